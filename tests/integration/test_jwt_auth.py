"""JWT bearer tokens through the authorizer of the local stack (HS256 issuer, secret in Secrets Manager)."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.conftest import JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET_NAME, Stack
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration
SECRET = "integration-test-hs256-secret-of-at-least-32-bytes"


@pytest.fixture(scope="module")
def jwt_secret(stack: Stack) -> Iterator[str]:
    secrets = stack.aws("secretsmanager")
    with contextlib.suppress(secrets.exceptions.ResourceExistsException):
        secrets.create_secret(Name=JWT_SECRET_NAME, SecretString=SECRET)
    yield SECRET


def token(secret: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300, "role": "deployer"}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


def call(stack: Stack, bearer: str, command: str = "echo") -> httpx.Response:
    return httpx.post(f"{stack.url}/v1/commands/{command}", json={}, headers={"Authorization": f"Bearer {bearer}"})


def test_valid_token_runs_a_permitted_command(stack: Stack, jwt_secret: str) -> None:
    response = call(stack, token(jwt_secret))
    assert response.status_code == 200, response.text
    execution_id = response.json()["execution_id"]
    mine = httpx.get(
        f"{stack.url}/v1/executions/{execution_id}", headers={"Authorization": f"Bearer {token(jwt_secret)}"}
    )
    assert mine.status_code == 200
    other_subject = httpx.get(
        f"{stack.url}/v1/executions/{execution_id}",
        headers={"Authorization": f"Bearer {token(jwt_secret, sub='user-2')}"},
    )
    assert_problem(other_subject, 404, "EXECUTION_NOT_FOUND")


def test_claims_map_to_permissions(stack: Stack, jwt_secret: str) -> None:
    assert_problem(call(stack, token(jwt_secret), "fail"), 403, "FORBIDDEN")
    assert_problem(call(stack, token(jwt_secret, role="viewer")), 403, "FORBIDDEN")


def _none_alg(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "make",
    [
        lambda s: token(s, exp=int(time.time()) - 120),
        lambda s: token(s, aud="someone-else"),
        lambda s: token(s, iss="https://evil.test/"),
        lambda s: token("another-secret-that-is-also-32-bytes-long"),
        lambda s: token(s, nbf=int(time.time()) + 600),
        lambda s: _none_alg({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}),
    ],
    ids=["expired", "wrong-audience", "unknown-issuer", "bad-signature", "not-yet-valid", "alg-none"],
)
def test_bad_tokens_get_401(stack: Stack, jwt_secret: str, make: Any) -> None:
    response = call(stack, make(jwt_secret))
    assert_problem(response, 401, "UNAUTHORIZED")
