"""The command's answer: status, safe response headers, a decoded body, cut to the result limit."""

from __future__ import annotations

import base64
import codecs
import json
from typing import Any

from cmdgate_commands.builtin.http_request.fetch import Landed
from cmdgate_commands.builtin.http_request.transport import Fetched

RESULT_HEADROOM_BYTES = 1024
SAFE_RESPONSE_HEADERS = frozenset(
    {
        "age",
        "cache-control",
        "content-encoding",
        "content-language",
        "content-length",
        "content-type",
        "date",
        "etag",
        "expires",
        "last-modified",
        "location",
        "retry-after",
        "vary",
        "x-request-id",
        "request-id",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    }
)
_TEXT_TYPES = ("application/xml", "application/javascript", "application/x-www-form-urlencoded")


def result_of(landed: Landed, max_result_bytes: int) -> dict[str, Any]:
    """`{status, headers, body, body_encoding, truncated, url, redirects}`, at most the result limit."""
    fetched = landed.fetched
    headers = {name.lower(): value for name, value in fetched.headers.items() if name.lower() in SAFE_RESPONSE_HEADERS}
    body, encoding = _body(fetched)
    result: dict[str, Any] = {
        "status": fetched.status,
        "headers": headers,
        "body": body,
        "body_encoding": encoding,
        "truncated": fetched.truncated,
        "url": str(landed.checked.url),
        "redirects": landed.redirects,
    }
    return _fit(result, fetched, max_result_bytes - RESULT_HEADROOM_BYTES)


def _body(fetched: Fetched) -> tuple[Any, str]:
    content_type, _, parameters = fetched.headers.get("content-type", "").partition(";")
    content_type = content_type.strip().lower()
    if fetched.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return base64.b64encode(fetched.content).decode("ascii"), "base64"
    charset = _charset(parameters)
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if is_json and not fetched.truncated and fetched.content:
        try:
            return json.loads(fetched.content.decode(charset)), "json"
        except (ValueError, UnicodeDecodeError):
            pass
    if not content_type or is_json or content_type.startswith("text/") or content_type in _TEXT_TYPES:
        return fetched.content.decode(charset, errors="replace"), "text"
    if content_type.endswith("+xml"):
        return fetched.content.decode(charset, errors="replace"), "text"
    return base64.b64encode(fetched.content).decode("ascii"), "base64"


def _charset(parameters: str) -> str:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _fit(result: dict[str, Any], fetched: Fetched, limit: int) -> dict[str, Any]:
    """Cut the body until the JSON-encoded result is at most `limit` bytes."""
    over = _encoded_size(result) - limit
    if over <= 0:
        return result
    if result["body_encoding"] == "json":
        result["body"], result["body_encoding"] = fetched.content.decode("utf-8", errors="replace"), "text"
    result["truncated"] = True
    if result["body_encoding"] == "base64":
        raw = fetched.content
        while over > 0 and raw:
            raw = raw[: max(0, len(raw) - (over * 3 // 4 + 3))]
            result["body"] = base64.b64encode(raw).decode("ascii")
            over = _encoded_size(result) - limit
        return result
    text: str = result["body"]
    while over > 0 and text:
        text = text[: max(0, len(text) - over)]  # every character costs at least one byte
        result["body"] = text
        over = _encoded_size(result) - limit
    return result


def _encoded_size(result: dict[str, Any]) -> int:
    return len(json.dumps(result, separators=(",", ":")).encode("utf-8"))
