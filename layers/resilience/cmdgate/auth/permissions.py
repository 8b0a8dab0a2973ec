"""Permission patterns (`*` matches any run of characters) and the principal holding them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ADMIN = "admin"
# Actions whose permission names a resource (`<action>:<resource>`); the others are the action alone.
SCOPED_ACTIONS: frozenset[str] = frozenset({"commands.run", "state.read", "state.write"})


@lru_cache(maxsize=1024)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)) + r"\Z", re.DOTALL
    )


def pattern_matches(pattern: str, permission: str) -> bool:
    """True if the glob `pattern` grants `permission`."""
    return _pattern_regex(pattern).match(permission) is not None


def may_reach_prefix(pattern: str, prefix: str) -> bool:
    """True if `pattern` could grant some permission that starts with `prefix`."""
    if "*" not in pattern:
        return pattern.startswith(prefix)
    literal = pattern.split("*", 1)[0]
    return literal.startswith(prefix) or prefix.startswith(literal)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an id unique across credential kinds, and its permission patterns."""

    principal_id: str
    permissions: tuple[str, ...]
    kind: str = "api_key"
    key_id: str | None = None
    rate_limit: dict[str, int] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        """True if the principal holds `admin` (or a pattern that grants it)."""
        return any(pattern_matches(p, ADMIN) for p in self.permissions)

    def can(self, permission: str) -> bool:
        """True if any held pattern grants `permission`; `admin` grants everything."""
        return self.is_admin or any(pattern_matches(p, permission) for p in self.permissions)

    def to_authorizer_context(self) -> dict[str, str]:
        """Scalar values only: API Gateway drops nested authorizer context."""
        context = {
            "principal_id": self.principal_id,
            "kind": self.kind,
            "permissions": json.dumps(list(self.permissions)),
        }
        if self.key_id:
            context["key_id"] = self.key_id
        if self.rate_limit:
            context["rate_limit"] = json.dumps(self.rate_limit)
        return context

    @classmethod
    def from_authorizer_context(cls, context: dict[str, Any] | None) -> Principal | None:
        """Rebuild the principal the authorizer vouched for, or None if absent or malformed."""
        if not context or not isinstance(context.get("principal_id"), str):
            return None
        try:
            permissions = json.loads(context.get("permissions") or "[]")
            rate_limit = json.loads(context.get("rate_limit") or "{}")
        except (TypeError, ValueError):
            return None
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            return None
        return cls(
            principal_id=context["principal_id"],
            permissions=tuple(permissions),
            kind=str(context.get("kind") or "api_key"),
            key_id=context.get("key_id"),
            rate_limit=rate_limit if isinstance(rate_limit, dict) else {},
        )
