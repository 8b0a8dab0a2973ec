"""The body rules of every JSON route (cmdgate.body) and the I-JSON parser (cmdgate.http.parse_json)."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel

from cmdgate import errors
from cmdgate.body import body_rule, check_body, refuse_bad_body
from cmdgate.config import Settings
from cmdgate.http import MAX_NESTING, parse_json

SETTINGS = Settings(max_body_bytes=64, max_state_body_bytes=256)


def event(
    body: str | None,
    *,
    method: str = "POST",
    resource: str = "/v1/commands/{name}",
    content_type: str | None = "application/json",
    base64_encoded: bool = False,
) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "resource": resource,
        "path": "/v1/commands/echo",
        "headers": {"Content-Type": content_type} if content_type else {},
        "body": body,
        "isBase64Encoded": base64_encoded,
        "requestContext": {"requestId": "req-1"},
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": 1, "a": 2}', "duplicate member names"),
        ('{"a": {"b": 1, "b": 1}}', "duplicate member names"),
        ("1e400", "beyond an IEEE 754 double"),
        ("[-1e400]", "beyond an IEEE 754 double"),
        ("9007199254740992", "2**53-1"),
        ("-9007199254740992", "2**53-1"),
        ('"\\ud800"', "lone surrogate"),
        ("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1), "deeper than"),
        ("[" * 5000 + "]" * 5000, "deeper than"),
        ("NaN", "not valid JSON"),
        ("Infinity", "not valid JSON"),
        ("{'a': 1}", "not valid JSON"),
        ("1" * 5000, "not valid JSON"),
    ],
)
def test_parse_json_refuses_what_i_json_does_not_allow(text: str, reason: str) -> None:
    with pytest.raises(errors.InvalidJson) as refused:
        parse_json(text)
    assert reason in refused.value.detail
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9007199254740991", 2**53 - 1),
        ("-9007199254740991", -(2**53 - 1)),
        ("1.7976931348623157e308", 1.7976931348623157e308),
        ('"\\ud83d\\ude00"', "\U0001f600"),
        ('{"s": "[[[[{{{{", "t": "\\"["}', {"s": "[[[[{{{{", "t": '"['}),
        ("[" * MAX_NESTING + "]" * MAX_NESTING, json.loads("[" * MAX_NESTING + "]" * MAX_NESTING)),
    ],
)
def test_parse_json_keeps_what_i_json_allows(text: str, value: Any) -> None:
    assert parse_json(text) == value


def test_each_route_has_its_rule() -> None:
    assert body_rule("GET", "/v1/commands", SETTINGS) is None
    assert body_rule("DELETE", "/v1/state/{key}", SETTINGS) is None
    assert body_rule("POST", "/v1/admin/keys", SETTINGS) == body_rule("POST", "/v1/state/{key}/restore", SETTINGS)
    command = body_rule("POST", "/v1/commands/{name}", SETTINGS)
    assert command is not None and (command.max_bytes, command.media_type) == (64, "application/json")
    put = body_rule("PUT", "/v1/state/{key}", SETTINGS)
    assert put is not None and (put.max_bytes, put.media_type) == (256, "application/json")
    patch = body_rule("PATCH", "/v1/state/{key}", SETTINGS)
    assert patch is not None and (patch.max_bytes, patch.media_type) == (256, "application/merge-patch+json")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content_type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"content_type": "application/x-www-form-urlencoded"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"content_type": "application/json; charset=iso-8859-1"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"content_type": "application/merge-patch+json"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"body": '{"a": "' + "x" * 64 + '"}'}, 413, "PAYLOAD_TOO_LARGE"),
        ({"body": base64.b64encode(b'{"a": "\xff"}').decode(), "base64_encoded": True}, 400, "INVALID_JSON"),
        ({"body": "not base64!", "base64_encoded": True}, 400, "INVALID_JSON"),
        ({"body": '{"a": 1, "a": 2}'}, 400, "INVALID_JSON"),
        ({"body": '{"a": 1e999}'}, 400, "INVALID_JSON"),
    ],
)
def test_a_refused_body_is_a_problem(kwargs: dict[str, Any], status: int, code: str) -> None:
    refused = refuse_bad_body(event(**{"body": "{}", **kwargs}), SETTINGS)
    assert refused is not None
    assert refused["statusCode"] == status
    assert refused["headers"]["Content-Type"] == "application/problem+json"
    problem = json.loads(refused["body"])
    assert (problem["status"], problem["code"], problem["request_id"]) == (status, code, "req-1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": '{"a": 1}'},
        {"body": '{"a": 1}', "content_type": None},  # no Content-Type is read as JSON
        {"body": '{"a": 1}', "content_type": "Application/JSON; charset=UTF-8"},
        {"body": "", "content_type": "text/plain"},  # no body, nothing to refuse (the route decides)
        {"body": None},
        {"body": "   "},  # blank: the command route reads it as {}, the others refuse it themselves
        {"body": base64.b64encode(b'{"a": "\xc3\xa9"}').decode(), "base64_encoded": True},
        {"body": "x" * 100, "method": "GET", "resource": "/v1/commands"},  # GET takes no body
        {"body": '{"v": "' + "x" * 200 + '"}', "method": "PUT", "resource": "/v1/state/{key}"},
        {
            "body": '{"v": 1}',
            "method": "PATCH",
            "resource": "/v1/state/{key}",
            "content_type": "application/merge-patch+json",
        },
    ],
)
def test_a_good_body_goes_on_to_routing(kwargs: dict[str, Any]) -> None:
    assert refuse_bad_body(event(**{"body": "{}", **kwargs}), SETTINGS) is None


def test_a_state_patch_of_another_type_says_what_it_accepts() -> None:
    with pytest.raises(errors.UnsupportedMediaType) as refused:
        check_body(event('{"a": 1}', method="PATCH", resource="/v1/state/{key}"), SETTINGS)
    assert refused.value.headers == {"Accept-Patch": "application/merge-patch+json"}


def test_the_state_limit_applies_to_state_values_only() -> None:
    value = '{"v": "' + "x" * 100 + '"}'
    assert refuse_bad_body(event(value, method="PUT", resource="/v1/state/{key}"), SETTINGS) is None
    refused = refuse_bad_body(event(value, resource="/v1/state/{key}/restore"), SETTINGS)
    assert refused is not None and refused["statusCode"] == 413


class Model(BaseModel):
    n: int


def test_powertools_validates_a_body_model_before_any_app_use_middleware() -> None:
    # What cmdgate.body relies on: Powertools runs its request validation (Body() models, reading
    # the body through json_body_deserializer) BEFORE the middlewares of app.use, so a gate there
    # would come too late. If this ever changes, the gate could move into a middleware.
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)
    seen: list[str] = []

    def middleware(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
        seen.append("middleware")
        return next_middleware(app)

    app.use(middlewares=[middleware])

    @app.post("/things")
    def create(thing: Annotated[Model, Body()]) -> dict[str, int]:
        seen.append("route")
        return {"n": thing.n}

    @app.exception_handler(errors.ProblemError)
    def problem(error: errors.ProblemError) -> Response[str]:
        seen.append(error.code)
        return Response(status_code=error.status, body="")

    @app.exception_handler(RequestValidationError)
    def invalid(error: RequestValidationError) -> Response[str]:
        seen.append("422")
        return Response(status_code=422, body="")

    def call(body: str) -> int:
        proxy = {**event(body, resource="/things"), "path": "/things"}
        return int(app.resolve(proxy, None)["statusCode"])  # type: ignore[arg-type]

    assert call('{"n": true, "n": 1}') == 400  # the deserializer is our I-JSON parser
    assert seen == ["INVALID_JSON"]
    assert call('{"n": "x"}') == 422
    assert seen == ["INVALID_JSON", "422"]  # the middleware never ran for either
    assert call('{"n": 1}') == 200
    assert seen[-2:] == ["middleware", "route"]
