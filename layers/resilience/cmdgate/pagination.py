"""`limit` and `cursor` for every list: opaque cursors that carry DynamoDB's LastEvaluatedKey."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from cmdgate import errors

MAX_LIMIT = 100
DEFAULT_LIMIT = 50


class InvalidCursor(errors.ProblemError):
    status, code, title = 400, "INVALID_CURSOR", "Invalid cursor"


def parse_limit(value: str | None) -> int:
    """The page size: 1..100, default 50."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,3}", value) or not 1 <= int(value) <= MAX_LIMIT:  # ASCII digits only
        raise errors.BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return int(value)


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    """An opaque cursor for the next page, or None on the last page."""
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, allowed_keys: frozenset[str]) -> dict[str, Any] | None:
    """The ExclusiveStartKey a cursor carries; only string attributes of the table's own keys are accepted."""
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise InvalidCursor("The cursor is not one this API issued.") from None
    if (
        not isinstance(raw, dict)
        or set(raw) != allowed_keys
        or not raw
        or not all(isinstance(v, str) and len(v) <= 1024 for v in raw.values())
    ):
        raise InvalidCursor("The cursor is not one this API issued.")
    return raw
