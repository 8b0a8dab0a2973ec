"""Shaping HTTP answers for the API function: problem+json and common headers."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from cmdgate.errors import PROBLEM_CONTENT_TYPE, InvalidJson, PayloadTooLarge, ProblemError


def parse_json(body: str) -> Any:
    """A request body as JSON, refusing what has no JSON meaning (NaN, Infinity) and runaway nesting (400)."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise InvalidJson("The request body is not valid JSON.") from None


def require_within(body: str | None, max_bytes: int) -> None:
    """413 if a request body is over `max_bytes` of UTF-8 (checked before anything parses it)."""
    if body is not None and len(body.encode("utf-8")) > max_bytes:
        raise PayloadTooLarge(f"The request body is over {max_bytes} bytes.")


def required_json_body(body: str | None, max_bytes: int) -> Any:
    """A body that must be a JSON value (400 if empty), of at most `max_bytes` (413)."""
    if body is None or not body.strip():
        raise InvalidJson("The request body must be a JSON value.")
    require_within(body, max_bytes)
    return parse_json(body)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def problem_response(error: ProblemError, request_id: str | None) -> Response[str]:
    """A problem+json response for `error`."""
    return Response(
        status_code=error.status,
        content_type=PROBLEM_CONTENT_TYPE,
        body=json.dumps(error.to_problem(request_id)),
        headers=dict(error.headers),
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    """A JSON response."""
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers or {})


def http_response(stored: dict[str, Any]) -> Response[str]:
    """A response from its stored form `{status, headers, body}` (see Submission.to_http)."""
    headers = dict(stored.get("headers") or {})
    content_type = headers.pop("Content-Type", "application/json")
    return Response(
        status_code=int(stored["status"]), content_type=content_type, body=json.dumps(stored["body"]), headers=headers
    )


def with_request_id(response: dict[str, Any], request_id: str) -> dict[str, Any]:
    """Add `X-Request-Id` to a proxy response, whichever header map it uses."""
    if "multiValueHeaders" in response:
        response["multiValueHeaders"] = {**(response.get("multiValueHeaders") or {}), "X-Request-Id": [request_id]}
    else:
        response["headers"] = {**(response.get("headers") or {}), "X-Request-Id": request_id}
    return response


def header(headers: dict[str, Any] | None, name: str) -> str | None:
    """A request header by case-insensitive name."""
    lowered = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == lowered:
            return str(value)
    return None


def prefers_async(prefer: str | None) -> bool:
    """True if a `Prefer` header (RFC 7240) asks for `respond-async`."""
    if not prefer:
        return False
    return any(p.split(";", 1)[0].strip().lower() == "respond-async" for p in prefer.split(","))
