"""Bad input is a clear 4xx on every JSON route, never a 5xx (the body gate, I-JSON, gateway limits)."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration

KIB = 1024
# (method, path, extra headers, size limit): every route that takes a JSON body.
JSON_ROUTES = [
    ("POST", "/v1/admin/keys", {}, 64 * KIB),
    ("POST", "/v1/admin/dlq/redrive", {}, 64 * KIB),
    ("POST", "/v1/admin/state/recover", {}, 64 * KIB),
    ("POST", "/v1/commands/echo", {}, 64 * KIB),
    ("PUT", "/v1/state/bad-input-{n}", {"If-None-Match": "*"}, 256 * KIB),
]
ROUTE_IDS = [f"{method} {path.split('-{')[0]}" for method, path, _, _ in JSON_ROUTES]
JSON = {"Content-Type": "application/json"}


def _send(stack: Stack, method: str, path: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
    return stack.admin.request(method, path.format(n=uuid.uuid4().hex), content=body, headers=headers)


BAD_BODIES = {
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "5,000 levels deep": b"[" * 5000 + b"]" * 5000,
    "duplicate member names": b'{"name": "a", "name": "b"}',
    "number beyond a double": b'{"name": 1e400}',
    "integer beyond 2**53-1": b'{"name": 9007199254740993}',
    "lone surrogate": b'{"name": "\\ud800"}',
    "not JSON": b"name=x&permissions=y",
}


@pytest.mark.parametrize(("method", "path", "headers", "limit"), JSON_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_body_that_is_not_i_json_is_400(
    stack: Stack, method: str, path: str, headers: dict[str, str], limit: int, body: bytes
) -> None:
    assert_problem(_send(stack, method, path, {**JSON, **headers}, body), 400, "INVALID_JSON")


@pytest.mark.parametrize(("method", "path", "headers", "limit"), JSON_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_json_route_refuses_other_media_types_with_415(
    stack: Stack, method: str, path: str, headers: dict[str, str], limit: int, content_type: str
) -> None:
    response = _send(stack, method, path, {**headers, "Content-Type": content_type}, b"{}")
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(("method", "path", "headers", "limit"), JSON_ROUTES, ids=ROUTE_IDS)
def test_a_body_over_the_route_limit_is_413(
    stack: Stack, method: str, path: str, headers: dict[str, str], limit: int
) -> None:
    body = b'{"name": "' + b"x" * limit + b'"}'
    assert_problem(_send(stack, method, path, {**JSON, **headers}, body), 413, "PAYLOAD_TOO_LARGE")


def test_a_state_patch_keeps_its_own_media_type(stack: Stack) -> None:
    key = f"bad-input-{uuid.uuid4().hex}"
    assert stack.admin.put(f"/v1/state/{key}", json={"a": 1}, headers={"If-None-Match": "*"}).status_code == 201
    refused = stack.admin.patch(f"/v1/state/{key}", json={"a": 2})
    assert_problem(refused, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert refused.headers["accept-patch"] == "application/merge-patch+json"
    patch = {"Content-Type": "application/merge-patch+json"}
    duplicate = stack.admin.patch(f"/v1/state/{key}", content=b'{"a": 2, "a": 3}', headers=patch)
    assert_problem(duplicate, 400, "INVALID_JSON")
    assert stack.admin.get(f"/v1/state/{key}").json() == {"a": 1}


def test_a_body_without_content_type_is_read_as_json(stack: Stack) -> None:
    response = stack.admin.post("/v1/commands/echo", content=b'{"message": "no type"}')
    assert response.status_code == 200, response.text
    assert response.json()["result"]["message"] == "no type"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "permissions": ["commands.list"], "expires_at": True},
        {"name": "k", "permissions": ["commands.list"], "rate_limit": {"quota": True, "window_s": 60}},
        {"name": "k", "permissions": ["commands.list"], "expires_at": "1700000000"},
    ],
    ids=["bool expires_at", "bool quota", "string expires_at"],
)
def test_admin_models_take_strict_integers(stack: Stack, body: dict[str, object]) -> None:
    assert_problem(stack.admin.post("/v1/admin/keys", json=body), 422, "VALIDATION_FAILED")


# Between Lambda's 6 MB invoke limit and API Gateway's 10 MB limit, and over 10 MB.
@pytest.mark.parametrize("size", [7 * 1024 * 1024, 11 * 1024 * 1024], ids=["7 MB", "11 MB"])
def test_a_body_over_the_platform_limits_is_a_413_problem(stack: Stack, size: int) -> None:
    response = stack.admin.post("/v1/commands/echo", content=b"x" * size, headers=JSON)
    body = assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["request_id"] == response.headers["x-request-id"]


def test_a_failed_command_carries_its_request_id_and_a_replay_the_original_one(stack: Stack) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = stack.admin.post("/v1/commands/fail", json={"status": 409}, headers=key)
    body = assert_problem(first, 409, "COMMAND_FAILED")
    assert body["request_id"] == first.headers["x-request-id"]
    replay = stack.admin.post("/v1/commands/fail", json={"status": 409}, headers=key)
    assert replay.headers["idempotent-replayed"] == "true"
    # The stored answer is replayed as it was given; the replay's own id is in its header.
    assert replay.json() == body
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    unkeyed = stack.admin.post("/v1/commands/fail", json={"status": 409})
    assert assert_problem(unkeyed, 409, "COMMAND_FAILED")["request_id"] == unkeyed.headers["x-request-id"]
