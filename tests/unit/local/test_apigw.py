"""The local API Gateway front, driven through WSGI with a fake Lambda invoker and the real template."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from cmdgate.auth.permissions import Principal
from cmdgate.auth.policy import allow_policy
from cmdgate_local.apigw import MAX_PAYLOAD_BYTES, ApiGateway
from cmdgate_local.lambda_runtime import EnvironmentFailed, InvocationTimeout, InvokeResult, PayloadTooLarge, Throttled
from cmdgate_local.template import ACCOUNT_ID, REGION, Template

STAGE = "prod"
TOKENS = {
    "admin-token": Principal("key:admin", ("admin",), key_id="admin"),
    "lister-token": Principal("key:lister", ("commands.list",), key_id="lister"),
}


def result(payload: Any, function_error: bool = False) -> InvokeResult:
    return InvokeResult(json.dumps(payload).encode(), function_error, 1.0, False, 0)


def ok_response(body: Any = None, status: int = 200, **extra: Any) -> InvokeResult:
    return result(
        {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)} | extra
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLambda:
    """Records invocations; the authorizer knows TOKENS, the api function answers what `api` returns."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.api: Callable[[dict[str, Any]], InvokeResult] = lambda event: ok_response({"ok": True})
        self.authorizer_error: Exception | None = None

    def __call__(self, function_id: str, event: dict[str, Any]) -> InvokeResult:
        self.calls.append((function_id, event))
        if function_id == "AuthorizerFunction":
            if self.authorizer_error is not None:
                raise self.authorizer_error
            token = event["headers"].get("Authorization", "").removeprefix("Bearer ")
            principal = TOKENS.get(token)
            if token == "not-json":
                return InvokeResult(b"Task timed out after 5.00 seconds", False, 1.0, True, 0)
            if token == "crash":
                return result({"errorType": "KeyError", "errorMessage": "'x'"}, function_error=True)
            if principal is None:
                return result({"errorType": "Exception", "errorMessage": "Unauthorized"}, function_error=True)
            return result(allow_policy(principal, event["methodArn"]))
        assert function_id == "ApiFunction"
        return self.api(event)

    def called(self, function_id: str) -> list[dict[str, Any]]:
        return [event for fid, event in self.calls if fid == function_id]


class Gateway:
    def __init__(self, template_data: dict[str, Any]) -> None:
        template = Template(template_data)
        self.fake = FakeLambda()
        self.clock = FakeClock()
        self.app = ApiGateway(
            template.api_routes(),
            template.authorizer(),
            template.gateway_responses(),
            self.fake,
            STAGE,
            clock=self.clock,
        )
        self.client = Client(self.app)

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> TestResponse:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def gw(template_data: dict[str, Any]) -> Gateway:
    return Gateway(template_data)


def problem(response: TestResponse) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/problem+json"
    request_id = response.headers["X-Request-Id"]
    assert request_id
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    assert body["request_id"] == request_id
    assert body["type"].startswith("https://")
    return body


def test_unknown_route_is_the_templates_not_found(gw: Gateway) -> None:
    for method, path in [("GET", "/v1/nope"), ("DELETE", "/v1/commands"), ("GET", "/v1/commands/echo/extra")]:
        response = gw.call(method, path, "admin-token")
        assert response.status_code == 404
        body = problem(response)
        assert (body["status"], body["code"]) == (404, "NOT_FOUND")
    assert gw.fake.calls == []


def test_each_gateway_answer_has_its_own_request_id(gw: Gateway) -> None:
    first = gw.call("GET", "/v1/nope")
    second = gw.call("GET", "/v1/nope")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_missing_authorization_is_401_without_calling_the_authorizer(gw: Gateway) -> None:
    response = gw.call("GET", "/v1/commands")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert problem(response)["code"] == "UNAUTHORIZED"
    assert gw.fake.calls == []


def test_open_routes_skip_the_authorizer(gw: Gateway) -> None:
    gw.fake.api = lambda event: ok_response({"status": "healthy"})
    response = gw.call("GET", "/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "healthy"}
    (event,) = gw.fake.called("ApiFunction")
    assert "authorizer" not in event["requestContext"]
    assert gw.fake.called("AuthorizerFunction") == []


def test_refused_credentials_are_401(gw: Gateway) -> None:
    response = gw.call("GET", "/v1/commands", "cg_unknown")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert problem(response)["code"] == "UNAUTHORIZED"
    assert gw.fake.called("ApiFunction") == []


def test_a_route_the_policy_does_not_allow_is_403(gw: Gateway) -> None:
    response = gw.call("POST", "/v1/commands/echo", "lister-token", data="{}")
    assert response.status_code == 403
    assert problem(response)["code"] == "FORBIDDEN"
    assert gw.fake.called("ApiFunction") == []
    assert len(gw.fake.called("AuthorizerFunction")) == 1


def test_the_authorizer_answer_is_cached_for_its_ttl(gw: Gateway) -> None:
    assert gw.call("GET", "/v1/commands", "lister-token").status_code == 200
    gw.clock.now += 59.9
    assert gw.call("GET", "/v1/commands", "lister-token").status_code == 200
    # The cached policy is re-evaluated for another route: denied without asking the authorizer.
    assert gw.call("POST", "/v1/commands/echo", "lister-token").status_code == 403
    assert len(gw.fake.called("AuthorizerFunction")) == 1
    # Another token has its own cache entry.
    assert gw.call("GET", "/v1/commands", "admin-token").status_code == 200
    assert len(gw.fake.called("AuthorizerFunction")) == 2
    gw.clock.now += 0.1  # 60 s after the first call
    assert gw.call("GET", "/v1/commands", "lister-token").status_code == 200
    assert len(gw.fake.called("AuthorizerFunction")) == 3
    assert len(gw.fake.called("ApiFunction")) == 4


def test_a_refusal_is_not_cached(gw: Gateway) -> None:
    assert gw.call("GET", "/v1/commands", "cg_unknown").status_code == 401
    assert gw.call("GET", "/v1/commands", "cg_unknown").status_code == 401
    assert len(gw.fake.called("AuthorizerFunction")) == 2


def test_the_proxy_event(gw: Gateway) -> None:
    response = gw.call(
        "POST",
        "/v1/commands/echo?verbose=1&tag=a&tag=b",
        "admin-token",
        data='{"message": "hi"}',
        headers={"Prefer": "respond-async", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    (authorizer_event,) = gw.fake.called("AuthorizerFunction")
    method_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:local/{STAGE}/POST/v1/commands/echo"
    assert authorizer_event["type"] == "REQUEST"
    assert authorizer_event["methodArn"] == method_arn
    assert authorizer_event["headers"]["Authorization"] == "Bearer admin-token"

    (event,) = gw.fake.called("ApiFunction")
    assert event["resource"] == "/v1/commands/{name}"
    assert event["path"] == "/v1/commands/echo"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"name": "echo"}
    assert event["body"] == '{"message": "hi"}'
    assert event["isBase64Encoded"] is False
    assert event["headers"]["Prefer"] == "respond-async"
    assert event["multiValueQueryStringParameters"] == {"verbose": ["1"], "tag": ["a", "b"]}
    assert event["queryStringParameters"]["verbose"] == "1"
    context = event["requestContext"]
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert (context["resourcePath"], context["stage"], context["path"]) == (
        "/v1/commands/{name}",
        STAGE,
        f"/{STAGE}/v1/commands/echo",
    )
    assert context["authorizer"]["principalId"] == "key:admin"
    # What the api function rebuilds from it is the principal the authorizer vouched for.
    assert Principal.from_authorizer_context(context["authorizer"]) == TOKENS["admin-token"]
    assert authorizer_event["requestContext"]["requestId"] == context["requestId"]


def test_a_binary_body_is_base64_encoded(gw: Gateway) -> None:
    gw.call("POST", "/v1/commands/echo", "admin-token", data=b"\xff\xfe\x00")
    (event,) = gw.fake.called("ApiFunction")
    assert event["isBase64Encoded"] is True
    assert event["body"] == "//4A"


def test_no_body_is_null(gw: Gateway) -> None:
    gw.call("GET", "/v1/commands", "admin-token")
    (event,) = gw.fake.called("ApiFunction")
    assert event["body"] is None
    assert event["pathParameters"] is None


def test_a_function_error_is_502(gw: Gateway) -> None:
    gw.fake.api = lambda event: result({"errorType": "RuntimeError", "errorMessage": "secret"}, function_error=True)
    response = gw.call("GET", "/v1/commands", "admin-token")
    assert response.status_code == 502
    body = problem(response)
    assert body["code"] == "BAD_GATEWAY"
    assert "secret" not in response.get_data(as_text=True)


@pytest.mark.parametrize("payload", [{"body": "no status"}, {"statusCode": "abc"}, "just a string", None])
def test_a_malformed_proxy_answer_is_502(gw: Gateway, payload: Any) -> None:
    gw.fake.api = lambda event: result(payload)
    assert gw.call("GET", "/v1/commands", "admin-token").status_code == 502


def test_headers_and_multi_value_headers_of_the_answer(gw: Gateway) -> None:
    gw.fake.api = lambda event: result(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-One": "1", "Cache-Control": "no-store"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "Vary": ["Accept", "Prefer"]},
            "body": '{"created": true}',
        }
    )
    response = gw.call("GET", "/v1/commands", "admin-token")
    assert response.status_code == 201
    assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers.getlist("Vary") == ["Accept", "Prefer"]
    assert response.headers["X-One"] == "1"
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"created": True}


def test_a_base64_answer_is_decoded(gw: Gateway) -> None:
    gw.fake.api = lambda event: result({"statusCode": 200, "isBase64Encoded": True, "body": "//4A"})
    assert gw.call("GET", "/v1/commands", "admin-token").get_data() == b"\xff\xfe\x00"


def test_an_integration_timeout_is_504(gw: Gateway) -> None:
    def hang(event: dict[str, Any]) -> InvokeResult:
        raise InvocationTimeout("ApiFunction")

    gw.fake.api = hang
    response = gw.call("GET", "/v1/commands", "admin-token")
    assert response.status_code == 504
    assert problem(response)["code"] == "GATEWAY_TIMEOUT"


def test_a_throttled_function_is_429_with_retry_after(gw: Gateway) -> None:
    def throttled(event: dict[str, Any]) -> InvokeResult:
        raise Throttled("ApiFunction")

    gw.fake.api = throttled
    response = gw.call("GET", "/v1/commands", "admin-token")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert problem(response)["code"] == "THROTTLED"


def test_a_request_over_the_payload_limit_is_413(gw: Gateway) -> None:
    response = gw.call("POST", "/v1/commands/echo", "admin-token", data=b"x" * (MAX_PAYLOAD_BYTES + 1))
    assert response.status_code == 413
    assert problem(response)["code"] == "PAYLOAD_TOO_LARGE"
    assert gw.fake.calls == []


def test_an_event_over_lambdas_invoke_limit_is_413(gw: Gateway) -> None:
    # Between Lambda's 6 MB and API Gateway's 10 MB: Lambda refuses the invoke, the client gets 413.
    def too_large(event: dict[str, Any]) -> InvokeResult:
        raise PayloadTooLarge("ApiFunction")

    gw.fake.api = too_large
    response = gw.call("POST", "/v1/commands/echo", "admin-token", data=b"{}")
    assert response.status_code == 413
    assert problem(response)["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers["x-amzn-ErrorType"] == "REQUEST_TOO_LARGE"


def test_an_authorizer_that_crashes_is_a_503_to_retry_not_a_401(gw: Gateway) -> None:
    response = gw.call("GET", "/v1/commands", "crash")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "WWW-Authenticate" not in response.headers
    assert gw.fake.called("ApiFunction") == []


def test_the_problem_status_matches_the_http_status_for_an_authorizer_failure(gw: Gateway) -> None:
    response = gw.call("GET", "/v1/commands", "crash")
    assert problem(response)["status"] == response.status_code


def test_an_authorizer_answer_that_is_not_json_is_an_authorizer_failure(gw: Gateway) -> None:
    # The emulator answers plain text when a cold start outlives the function's timeout.
    response = gw.call("GET", "/v1/commands", "not-json")
    assert response.status_code == 503
    assert problem(response)["status"] == 503 and problem(response)["code"] == "AUTHORIZER_FAILURE"
    assert gw.fake.called("ApiFunction") == []


def test_an_environment_that_drops_the_connection_is_a_502_problem(gw: Gateway) -> None:
    def dropped(event: dict[str, Any]) -> InvokeResult:
        raise EnvironmentFailed("ApiFunction#0: RemoteProtocolError")

    gw.fake.api = dropped
    response = gw.call("GET", "/v1/commands", "admin-token")
    assert response.status_code == 502
    assert problem(response)["status"] == 502


def test_a_failure_of_the_front_itself_is_a_problem_not_an_html_page(gw: Gateway) -> None:
    def broken(event: dict[str, Any]) -> InvokeResult:
        raise RuntimeError("a bug in the front")

    gw.fake.api = broken
    response = gw.call("GET", "/v1/commands", "admin-token")
    assert response.status_code >= 500
    assert problem(response)["status"] == response.status_code


def test_an_authorizer_timeout_is_a_5xx(gw: Gateway) -> None:
    gw.fake.authorizer_error = InvocationTimeout("AuthorizerFunction")
    response = gw.call("GET", "/v1/commands", "admin-token")
    assert response.status_code == 503
    assert gw.fake.called("ApiFunction") == []
