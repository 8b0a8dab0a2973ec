"""Admin key management and the bootstrap path, against the local stack."""

from __future__ import annotations

import pytest

from cmdgate.auth import BootstrapRefused
from tests.integration.conftest import Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


def test_issue_use_list_and_revoke_a_key(stack: Stack) -> None:
    created = stack.admin.post(
        "/v1/admin/keys",
        json={"name": "ci", "permissions": ["commands.run:echo"], "rate_limit": {"quota": 50, "window_s": 60}},
    )
    assert created.status_code == 201, created.text
    key_id, api_key = created.json()["key_id"], created.json()["api_key"]
    assert created.headers["cache-control"] == "no-store"
    client = stack.client(api_key)
    assert client.post("/v1/commands/echo", json={}).status_code == 200

    listed = []
    cursor = None
    while True:
        page = stack.admin.get("/v1/admin/keys", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["keys"]) <= 2
        listed += page["keys"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    mine = next(k for k in listed if k["key_id"] == key_id)
    assert mine["permissions"] == ["commands.run:echo"] and mine["status"] == "active"
    assert all("key_hash" not in k and "api_key" not in k for k in listed)

    assert stack.admin.delete(f"/v1/admin/keys/{key_id}").status_code == 204
    # Revocation is effective within the authorizer cache TTL (1 s in the test stack).
    wait_for(lambda: client.post("/v1/commands/echo", json={}).status_code == 401, timeout_s=10)


def test_admin_routes_need_admin(stack: Stack) -> None:
    client = stack.client(stack.create_key(["commands.run:*", "commands.list"]))
    assert_problem(client.get("/v1/admin/keys"), 403, "FORBIDDEN")
    assert_problem(client.post("/v1/admin/keys", json={"name": "x", "permissions": ["admin"]}), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "permissions": ["admin"]},
        {"name": "x", "permissions": []},
        {"name": "x", "permissions": ["has space"]},
        {"name": "x", "permissions": ["admin"], "rate_limit": {"quota": 0, "window_s": 60}},
        {"name": "x", "permissions": ["admin"], "surprise": 1},
    ],
)
def test_invalid_key_requests_are_422(stack: Stack, body: dict[str, object]) -> None:
    problem = assert_problem(stack.admin.post("/v1/admin/keys", json=body), 422, "VALIDATION_FAILED")
    assert problem["errors"]


def test_bad_cursor_and_limit_are_400(stack: Stack) -> None:
    assert_problem(stack.admin.get("/v1/admin/keys", params={"cursor": "bm90LWpzb24"}), 400, "INVALID_CURSOR")
    assert_problem(stack.admin.get("/v1/admin/keys", params={"limit": "500"}), 400, "BAD_REQUEST")


def test_revoking_an_unknown_key_is_404(stack: Stack) -> None:
    assert_problem(stack.admin.delete("/v1/admin/keys/0000000000000000"), 404, "NOT_FOUND")


def test_bootstrap_refuses_once_an_admin_key_exists(stack: Stack) -> None:
    with pytest.raises(BootstrapRefused):
        stack.key_store().bootstrap_admin()


def test_admin_health_details(stack: Stack) -> None:
    body = stack.admin.get("/v1/admin/health").json()
    assert body["checks"]["dynamodb"]["status"] == "ok"
    # Degraded only by what a shared stack may hold by now (an event dead-lettered by a slow cold start
    # under the tests' 1 s visibility timeout), and then the failing check says why.
    failing = {name for name, check in body["checks"].items() if check["status"] != "ok"}
    assert failing <= {"dead_letters"}
    assert body["status"] == ("degraded" if failing else "healthy")
    if failing:
        assert body["checks"]["dead_letters"]["error_class"] == "DeadLettersWaiting"
