"""State keys, the version register and the version log."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785

from cmdgate.errors import InvalidJson
from cmdgate.state.errors import InvalidStateKey

KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9._:-]{0,127}")


def validate_key(key: str) -> str:
    """The key, if it matches `^[a-z0-9][a-z0-9._:-]{0,127}$`."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise InvalidStateKey("A state key matches ^[a-z0-9][a-z0-9._:-]{0,127}$.")
    return key


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON: the form digests and size limits are computed on."""
    try:
        return bytes(rfc8785.dumps(value))
    except ValueError:  # numbers outside I-JSON (e.g. 2**53 + 1, 1e400): not a value we can version
        raise InvalidJson("Numbers must fit IEEE 754 doubles exactly (RFC 8785 / I-JSON).") from None


def digest_of(value: Any) -> str:
    """SHA-256 of the canonical JSON of a value."""
    return hashlib.sha256(canonical(value)).hexdigest()


@dataclass(frozen=True)
class Register:
    """The newest version of a key (DynamoDB is the source of truth; the gist follows)."""

    key: str
    version: int
    value_json: str
    digest: str
    updated_at: str
    deleted: bool
    fence: int | None = None
    gist_id: str | None = None
    synced_version: int = 0
    revision_sha: str | None = None
    shard: str | None = None  # "<namespace>/<n>": the shard gist the key's file is in (format 2)
    gist_file: str | None = None  # the key's file in that gist
    dirty_at: float | None = None  # the oldest write not yet synced (epoch s), None when synced

    @property
    def value(self) -> Any:
        """The stored JSON value."""
        return json.loads(self.value_json)


@dataclass(frozen=True)
class VersionEntry:
    """One version in the log (kept for the retention window, or for good once it reached the gist)."""

    key: str
    version: int
    value_json: str
    digest: str
    updated_at: str
    deleted: bool
    revision: str | None = None

    @property
    def value(self) -> Any:
        """The JSON value of this version."""
        return json.loads(self.value_json)
