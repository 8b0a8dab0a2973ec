"""The body rules every JSON route shares, checked once before routing (see docs/design.md "Request bodies").

Powertools runs its request validation (the `Body()` models) before any `app.use` middleware,
so these rules run on the proxy event before `app.resolve`: a route may keep its pydantic body
model (the OpenAPI description comes from it) and still never sees a body the rules refuse.

For a POST, PUT or PATCH with a non-empty body, in this order:

1. Content-Type: `application/json` (a `charset` parameter must be utf-8); no Content-Type is read
   as JSON; anything else -> 415. `PATCH /v1/state/{key}` takes only `application/merge-patch+json`
   (415 with `Accept-Patch`).
2. Size: at most `max_body_bytes` (64 KiB), state values `max_state_body_bytes` (256 KiB) -> 413.
3. UTF-8, then I-JSON (`cmdgate.http.parse_json`) -> 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cmdgate import errors
from cmdgate.config import Settings
from cmdgate.http import header, parse_json

JSON_MEDIA_TYPE = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STATE_VALUE_RESOURCE = "/v1/state/{key}"
# Webhook deliveries are read raw by their route (cmdgate.webhooks): size, then signature, then JSON.
WEBHOOK_RESOURCE = "/v1/webhooks/{source}"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class BodyRule:
    """What one route accepts as a body."""

    max_bytes: int
    media_type: str = JSON_MEDIA_TYPE


def body_rule(method: str, resource: str, settings: Settings) -> BodyRule | None:
    """The rule of a route (by API Gateway resource), or None if it takes no body."""
    if method not in BODY_METHODS or resource == WEBHOOK_RESOURCE:
        return None
    if resource == STATE_VALUE_RESOURCE:
        media_type = MERGE_PATCH if method == "PATCH" else JSON_MEDIA_TYPE
        return BodyRule(settings.max_state_body_bytes, media_type)
    return BodyRule(settings.max_body_bytes)


def check_body(event: Mapping[str, Any], settings: Settings) -> None:
    """Raise the ProblemError (415, 413, 400) for a body its route's rule refuses."""
    rule = body_rule(str(event.get("httpMethod") or "").upper(), str(event.get("resource") or ""), settings)
    raw = event.get("body")
    if rule is None or not raw:
        return
    check_media_type(header(event.get("headers"), "Content-Type"), rule.media_type)
    data = body_bytes(str(raw), bool(event.get("isBase64Encoded")))
    if len(data) > rule.max_bytes:
        raise errors.PayloadTooLarge(f"The request body is over {rule.max_bytes} bytes.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidJson("The request body is not UTF-8.") from None
    if text.strip():
        parse_json(text)


def refuse_bad_body(event: Mapping[str, Any], settings: Settings) -> dict[str, Any] | None:
    """A problem+json proxy response for a refused body, or None to go on routing."""
    try:
        check_body(event, settings)
    except errors.ProblemError as refused:
        request_id = (event.get("requestContext") or {}).get("requestId")
        return {
            "statusCode": refused.status,
            "headers": {"Content-Type": errors.PROBLEM_CONTENT_TYPE, **refused.headers},
            "body": json.dumps(refused.to_problem(request_id)),
            "isBase64Encoded": False,
        }
    return None


def check_media_type(content_type: str | None, expected: str = JSON_MEDIA_TYPE) -> None:
    """415 unless `content_type` is `expected` (UTF-8); no Content-Type passes as JSON."""
    if content_type is None and expected == JSON_MEDIA_TYPE:
        return
    media_type, *parameters = (content_type or "").split(";")
    charsets = [value for name, _, value in (p.partition("=") for p in parameters) if name.strip().lower() == "charset"]
    if media_type.strip().lower() == expected and all(c.strip().strip('"').lower() == "utf-8" for c in charsets):
        return
    headers = {"Accept-Patch": MERGE_PATCH} if expected == MERGE_PATCH else {}
    raise errors.UnsupportedMediaType(f"This route takes {expected} (UTF-8).", headers=headers)


def body_bytes(raw: str, is_base64: bool) -> bytes:
    """The bytes of a proxy event's body (400 for base64 that is not)."""
    if not is_base64:
        return raw.encode("utf-8", errors="surrogatepass")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidJson("The request body is not valid base64.") from None
