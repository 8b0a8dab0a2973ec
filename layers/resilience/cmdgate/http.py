"""Shaping HTTP answers for the API function: problem+json and common headers."""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from cmdgate.errors import PROBLEM_CONTENT_TYPE, InvalidJson, ProblemError

if TYPE_CHECKING:
    # Only the api function builds responses: the worker and the webhook receiver parse JSON here
    # without paying for Powertools' event handler (imported by the response builders below).
    from aws_lambda_powertools.event_handler import Response

# I-JSON (RFC 7493): integers beyond this are not exact in an IEEE 754 double, so other parsers disagree.
MAX_EXACT_INTEGER = 2**53 - 1
# Deeper bodies are refused before parsing: nothing we take needs more, and deep values would
# exhaust the recursion limit later (when dumped or validated) instead of here.
MAX_NESTING = 64
_NESTING_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def parse_json(body: str) -> Any:
    """A request body as I-JSON (RFC 7493), else InvalidJson (400).

    Refused: what is not JSON (NaN, Infinity included); duplicate member names; numbers a double
    cannot hold (1e400) and integers beyond +-(2**53-1); strings with lone surrogates; nesting
    deeper than MAX_NESTING.
    """
    _check_nesting(body)
    try:
        value = json.loads(
            body,
            parse_constant=_refuse_constant,
            parse_float=_double,
            parse_int=_exact_integer,
            object_pairs_hook=_unique_members,
        )
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson("The request body is not I-JSON: a string has a lone surrogate.") from None
    except IJsonViolation as refused:
        raise InvalidJson(f"The request body is not I-JSON: {refused}.") from None
    except (ValueError, RecursionError):
        raise InvalidJson("The request body is not valid JSON.") from None
    return value


class IJsonViolation(ValueError):
    """JSON that I-JSON (RFC 7493) does not allow."""


def _check_nesting(body: str) -> None:
    if body.count("[") + body.count("{") <= MAX_NESTING:  # cannot nest deeper: skip the scan
        return
    depth = 0
    for token in _NESTING_TOKENS.finditer(body):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise InvalidJson(f"The request body nests deeper than {MAX_NESTING} levels.")
        elif char in "]}":
            depth -= 1


def required_json_body(body: str | None) -> Any:
    """A body that must be a JSON value (400 if empty); its size and media type were checked by cmdgate.body."""
    if body is None or not body.strip():
        raise InvalidJson("The request body must be a JSON value.")
    return parse_json(body)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _double(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise IJsonViolation(f"the number {text[:32]} is beyond an IEEE 754 double")
    return value


def _exact_integer(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_EXACT_INTEGER:
        raise IJsonViolation(f"integers must be within +-(2**53-1), got {text[:32]}; send larger ones as strings")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise IJsonViolation("an object has duplicate member names")
    return members


def problem_response(error: ProblemError, request_id: str | None) -> Response[str]:
    """A problem+json response for `error`."""
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=error.status,
        content_type=PROBLEM_CONTENT_TYPE,
        body=json.dumps(error.to_problem(request_id)),
        headers=dict(error.headers),
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    """A JSON response."""
    from aws_lambda_powertools.event_handler import Response

    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers or {})


def http_response(stored: dict[str, Any]) -> Response[str]:
    """A response from its stored form `{status, headers, body}` (see Submission.to_http)."""
    from aws_lambda_powertools.event_handler import Response

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
