"""Who did it, from where, in which request: the attributes an audited record carries.

A record becomes part of the trail by carrying `audit_day` (`YYYY-MM-DD#<shard>`, the hash key of
the sparse `by_audit_day` index) and `audit_at` (`<RFC 3339 ms>#<unique>`, its range key: unique,
and ordered as time is). The shard spreads one day's writes over AUDIT_SHARDS index partitions.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

AUDIT_INDEX = "by_audit_day"
AUDIT_SHARDS = 4
ACTIONS: tuple[str, ...] = (
    "key.created",
    "key.revoked",
    "signing_secret.rotated",
    "command.run",
    "webhook.accepted",
    "state.written",
    "state.deleted",
    "state.restored",
    "dlq.redriven",
)
# The attributes every audited record carries (the index projects them).
STAMP_FIELDS = ("audit_day", "audit_at", "audit_action", "audit_principal", "request_id", "source_ip")
MAX_ID_CHARS = 128


def day_of(epoch_s: float) -> str:
    """The UTC day of an epoch time: `YYYY-MM-DD`."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")


def iso_ms(epoch_s: float) -> str:
    """An epoch time as RFC 3339 UTC with milliseconds (fixed width, so text order is time order)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shard_of(unique: str) -> int:
    """The index partition of a record of the day (stable for the record)."""
    return int(hashlib.sha256(unique.encode()).hexdigest()[:8], 16) % AUDIT_SHARDS


@dataclass(frozen=True)
class AuditStamp:
    """The request an audited record came from: never a credential, never a body."""

    principal_id: str
    request_id: str
    source_ip: str
    action: str = ""
    idempotency_key: str | None = None
    at: float = field(default_factory=time.time)

    def with_action(self, action: str) -> AuditStamp:
        """The same request, doing `action` (one of ACTIONS)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        return replace(self, action=action)

    def fields(self, unique: str, default_action: str = "") -> dict[str, str]:
        """The attributes that put a record (identified by `unique`) into the trail."""
        action = self.action or default_action
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        item = {
            "audit_day": f"{day_of(self.at)}#{shard_of(unique)}",
            "audit_at": f"{iso_ms(self.at)}#{unique}",
            "audit_action": action,
            "audit_principal": self.principal_id,
            "request_id": self.request_id,
            "source_ip": self.source_ip,
        }
        if self.idempotency_key is not None:
            item["idempotency_key"] = self.idempotency_key
        return item


def stamp_from_event(
    event: dict[str, Any], principal_id: str, *, action: str = "", idempotency_key: str | None = None
) -> AuditStamp:
    """The stamp of an API Gateway (REST, v1) request: its request id and the caller's address."""
    context = event.get("requestContext") or {}
    request_id = context.get("requestId")
    source_ip = (context.get("identity") or {}).get("sourceIp")
    stamp = AuditStamp(
        principal_id=principal_id,
        request_id=request_id[:MAX_ID_CHARS] if isinstance(request_id, str) and request_id else "-",
        source_ip=_address(source_ip),
        idempotency_key=idempotency_key,
    )
    return stamp.with_action(action) if action else stamp


def _address(value: Any) -> str:
    """The source address if it is one (API Gateway sets it; anything else is not trusted)."""
    if not isinstance(value, str):
        return "-"
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return "-"
