"""The credential matrix through the real authorizer: no, malformed, wrong, expired and revoked credentials.

Each is a 401 problem+json with `WWW-Authenticate: Bearer`, and a refused request runs nothing.
JWT-specific refusals (alg none, algorithm confusion, kid injection, rotated keys) are in
test_jwt_auth.py.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.integration.conftest import Stack, wait_for
from tests.integration.test_commands_api import assert_problem
from tests.security.effects import executions_of

pytestmark = pytest.mark.integration


def echo(stack: Stack, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{stack.url}/v1/commands/echo", json={}, headers=headers, timeout=60)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer cg_not_a_real_key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "bearer"},
        {"Authorization": "Token cg_not_a_real_key"},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Bearer " + "x" * 9000},
        {"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."},
    ],
    ids=[
        "no-token",
        "unknown-key",
        "wrong-scheme",
        "empty-bearer",
        "scheme-only",
        "other-scheme",
        "jwt-shaped-garbage",
        "oversized",
        "unsigned-jwt",
    ],
)
def test_bad_credentials_get_401_problem(stack: Stack, headers: dict[str, str]) -> None:
    response = echo(stack, headers)
    assert_problem(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_key_with_one_character_changed_is_refused(stack: Stack) -> None:
    key = stack.create_key(["commands.run:echo"])
    assert echo(stack, {"Authorization": f"Bearer {key}"}).status_code == 200
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert_problem(echo(stack, {"Authorization": f"Bearer {tampered}"}), 401, "UNAUTHORIZED")
    assert_problem(echo(stack, {"Authorization": f"Bearer {key}x"}), 401, "UNAUTHORIZED")
    assert_problem(echo(stack, {"Authorization": f"Bearer {key.upper()}"}), 401, "UNAUTHORIZED")


def test_an_expired_key_is_refused_and_runs_nothing(stack: Stack) -> None:
    key, record = stack.key_store().create(
        f"expired-{uuid.uuid4().hex[:6]}",
        ["commands.run:echo"],
        {"quota": 100, "window_s": 60},
        expires_at=int(time.time()) - 1,
    )
    assert_problem(echo(stack, {"Authorization": f"Bearer {key}"}), 401, "UNAUTHORIZED")
    assert executions_of(stack, f"key:{record.key_id}") == []


def test_a_revoked_key_is_refused_once_the_authorizer_cache_lapses(stack: Stack) -> None:
    created = stack.admin.post("/v1/admin/keys", json={"name": "to-revoke", "permissions": ["commands.run:echo"]})
    assert created.status_code == 201, created.text
    key_id, key = created.json()["key_id"], created.json()["api_key"]
    assert echo(stack, {"Authorization": f"Bearer {key}"}).status_code == 200
    assert stack.admin.delete(f"/v1/admin/keys/{key_id}").status_code == 204
    # The front caches an authorizer's answer for 1 s on this stack (300 s by default on AWS): until it
    # lapses the key still runs (each such run is an execution of its own), then never again.
    wait_for(lambda: echo(stack, {"Authorization": f"Bearer {key}"}).status_code == 401, timeout_s=15)
    ran = executions_of(stack, f"key:{key_id}")
    assert_problem(echo(stack, {"Authorization": f"Bearer {key}"}), 401, "UNAUTHORIZED")
    assert_problem(echo(stack, {"Authorization": f"Bearer {key}"}), 401, "UNAUTHORIZED")
    assert len(ran) >= 1 and executions_of(stack, f"key:{key_id}") == ran
