"""HTTP shape of state: conditional headers in, ETag / Last-Modified / version headers out."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from cmdgate import errors
from cmdgate.pagination import InvalidCursor, decode_cursor
from cmdgate.state.model import Register
from cmdgate.state.service import Preconditions

_ETAG = re.compile(r'"(\d{1,18})"')


def parse_version(value: str | None) -> int | None:
    """The `version` query parameter of a read: None, or a positive integer below 10^12 (else 400)."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,12}", value) or not 0 < int(value) < 10**12:
        raise errors.BadRequest("version must be a positive integer.")
    return int(value)


def restore_version(body: Any) -> int:
    """The version a restore body `{"version": N}` names (422 unless N is a positive integer)."""
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise errors.ValidationFailed([{"loc": ["body", "version"], "msg": "a positive integer"}])
    return version


def parse_preconditions(if_match: str | None, if_none_match: str | None) -> Preconditions:
    """If-Match / If-None-Match as the state API understands them (strong ETags `"<version>"`, or `*`)."""
    match_version, match_any, none_match_any = None, False, False
    if if_match is not None:
        value = if_match.strip()
        if value == "*":
            match_any = True
        elif found := _ETAG.fullmatch(value):
            match_version = int(found.group(1))
        else:
            raise errors.BadRequest('If-Match must be "*" or a strong ETag "<version>".')
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise errors.BadRequest("A write accepts only If-None-Match: *.")
        none_match_any = True
    return Preconditions(if_match=match_version, if_match_any=match_any, if_none_match_any=none_match_any)


def etag(version: int) -> str:
    """The strong ETag of a version."""
    return f'"{version}"'


def none_match_hits(if_none_match: str | None, version: int) -> bool:
    """True if a conditional GET's If-None-Match names the current version (or is `*`)."""
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag(version) in tags or f"W/{etag(version)}" in tags


def state_headers(register: Register) -> dict[str, str]:
    """Metadata of the value: ETag, Last-Modified, State-Version, Gist-Synced-Version."""
    modified = datetime.strptime(register.updated_at, "%Y-%m-%dT%H:%M:%S%z")
    return {
        "ETag": etag(register.version),
        "Last-Modified": format_datetime(modified, usegmt=True),
        "State-Version": str(register.version),
        "Gist-Synced-Version": str(register.synced_version),
    }


def history_cursor(cursor: str | None) -> dict[str, Any] | None:
    """A history cursor: it may only point at a version-log entry (`v#` + 12 digits)."""
    start = decode_cursor(cursor, frozenset({"sk"}))
    if start is not None and not re.fullmatch(r"v#[0-9]{12}", start["sk"]):
        raise InvalidCursor("The cursor is not one this API issued.")
    return start
