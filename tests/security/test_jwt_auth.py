"""JWT bearer tokens through the real authorizer of the local stack.

Two issuers: HS256 with its secret in Secrets Manager, and a Supabase-shaped JWKS issuer
(RS256 and ES256 keys served on loopback by cmdgate_local.jwks_issuer, rotated while the stack runs).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from cmdgate_local.jwks_issuer import JwksIssuer
from tests.conftest import (
    SUPABASE_AUDIENCE,
    SUPABASE_ES_KID,
    SUPABASE_ISSUER,
    SUPABASE_JWKS_REFETCH_INTERVAL_S,
    SUPABASE_RS_KID,
)
from tests.integration.conftest import JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET_NAME, Stack, wait_for
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
    return httpx.post(
        f"{stack.url}/v1/commands/{command}", json={}, headers={"Authorization": f"Bearer {bearer}"}, timeout=60
    )


def test_valid_token_runs_a_permitted_command(stack: Stack, jwt_secret: str) -> None:
    response = call(stack, token(jwt_secret))
    assert response.status_code == 200, response.text
    execution_id = response.json()["execution_id"]
    mine = httpx.get(
        f"{stack.url}/v1/executions/{execution_id}",
        headers={"Authorization": f"Bearer {token(jwt_secret)}"},
        timeout=60,
    )
    assert mine.status_code == 200
    other_subject = httpx.get(
        f"{stack.url}/v1/executions/{execution_id}",
        headers={"Authorization": f"Bearer {token(jwt_secret, sub='user-2')}"},
        timeout=60,
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


# --- the Supabase-shaped JWKS issuer (RS256 and ES256 keys on loopback, rotated while the stack runs) ------


def supabase_claims(**overrides: Any) -> dict[str, Any]:
    """The claims of a Supabase access token (overrides with None drop a claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": SUPABASE_ISSUER,
        "aud": SUPABASE_AUDIENCE,
        "sub": "7d3a4c52-55c0-4b6e-9a7e-1f2b3c4d5e6f",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
        "email": "someone@example.com",
        "phone": "",
        "is_anonymous": False,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "amr": [{"method": "password", "timestamp": now - 5}],
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def supabase_token(issuer: JwksIssuer, kid: str = SUPABASE_RS_KID, **overrides: Any) -> str:
    return issuer.sign(supabase_claims(**overrides), kid)


def refused_401(stack: Stack, bearer: str) -> bool:
    response = call(stack, bearer)
    assert response.status_code in (200, 401), response.text  # never a 5xx on the way
    return response.status_code == 401


@pytest.mark.parametrize("kid", [SUPABASE_RS_KID, SUPABASE_ES_KID], ids=["RS256", "ES256"])
def test_a_supabase_access_token_runs_what_its_claims_map_to(stack: Stack, jwks_issuer: JwksIssuer, kid: str) -> None:
    response = call(stack, supabase_token(jwks_issuer, kid))
    assert response.status_code == 200, response.text
    # role=authenticated maps to echo and the list; the command list shows just that.
    listed = httpx.get(
        f"{stack.url}/v1/commands",
        headers={"Authorization": f"Bearer {supabase_token(jwks_issuer, kid)}"},
        timeout=60,
    )
    assert listed.status_code == 200, listed.text
    assert [c["name"] for c in listed.json()["commands"]] == ["echo"]
    # aal1 does not reach what aal=aal2 maps to; an aal2 session does.
    assert_problem(call(stack, supabase_token(jwks_issuer, kid), "fail"), 403, "FORBIDDEN")
    stepped_up = httpx.post(
        f"{stack.url}/v1/commands/fail",
        json={"mode": "permanent"},
        headers={"Authorization": f"Bearer {supabase_token(jwks_issuer, kid, aal='aal2')}"},
        timeout=60,
    )
    assert_problem(stepped_up, 500, "COMMAND_FAILED")


def test_a_supabase_principal_is_its_issuer_and_subject(stack: Stack, jwks_issuer: JwksIssuer) -> None:
    mine = supabase_token(jwks_issuer)
    execution_id = call(stack, mine).json()["execution_id"]
    item = stack.aws("dynamodb").get_item(
        TableName=stack.resource("ExecutionsTable"), Key={"execution_id": {"S": execution_id}}
    )["Item"]
    assert item["principal_id"]["S"] == f"{SUPABASE_ISSUER}|{supabase_claims()['sub']}"
    other_user = supabase_token(jwks_issuer, SUPABASE_ES_KID, sub=str(uuid.uuid4()))
    assert_problem(
        httpx.get(
            f"{stack.url}/v1/executions/{execution_id}", headers={"Authorization": f"Bearer {other_user}"}, timeout=60
        ),
        404,
        "EXECUTION_NOT_FOUND",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "anon-or-anything-else"},
        {"iss": "https://someoneelse.supabase.co/auth/v1"},
        {"iss": SUPABASE_ISSUER + "/"},
        {"exp": int(time.time()) - 120},
        {"role": "anon"},
        {"sub": None},
        {"exp": None},
    ],
    ids=["wrong-audience", "wrong-issuer", "issuer-with-slash", "expired", "anon-role", "no-sub", "no-exp"],
)
def test_bad_supabase_tokens_are_refused(stack: Stack, jwks_issuer: JwksIssuer, overrides: dict[str, Any]) -> None:
    response = call(stack, supabase_token(jwks_issuer, **overrides))
    # anon maps to no permission: authenticated, but forbidden; every other case is not authenticated.
    if overrides.get("role") == "anon":
        assert_problem(response, 403, "FORBIDDEN")
    else:
        assert_problem(response, 401, "UNAUTHORIZED")


def test_a_token_signed_by_a_key_the_issuer_never_published_is_refused(stack: Stack, jwks_issuer: JwksIssuer) -> None:
    with JwksIssuer(SUPABASE_ISSUER) as impostor:
        impostor.add_key("RS256", SUPABASE_RS_KID)  # the published kid, another key
        impostor.add_key("ES256", "never-published")
        assert_problem(call(stack, supabase_token(impostor, SUPABASE_RS_KID)), 401, "UNAUTHORIZED")
        assert_problem(call(stack, supabase_token(impostor, "never-published")), 401, "UNAUTHORIZED")


def test_a_new_key_is_picked_up_and_a_withdrawn_one_refused(stack: Stack, jwks_issuer: JwksIssuer) -> None:
    assert call(stack, supabase_token(jwks_issuer)).status_code == 200  # every cache holds the current keys
    new_kid = jwks_issuer.add_key("ES256")
    try:
        # An unknown kid refetches the JWKS (at most once per refetch interval per environment).
        wait_for(lambda: call(stack, supabase_token(jwks_issuer, new_kid)).status_code == 200, timeout_s=20)
        retired = supabase_token(jwks_issuer, new_kid, exp=int(time.time()) + 600)
    finally:
        jwks_issuer.remove_key(new_kid)
    # Once each environment's cache is past its TTL (4 s here), the withdrawn key verifies nothing.
    wait_for(lambda: all(refused_401(stack, retired) for _ in range(4)), timeout_s=30)
    assert_problem(call(stack, retired), 401, "UNAUTHORIZED")
    assert call(stack, supabase_token(jwks_issuer)).status_code == 200  # the other keys still work


def test_made_up_kids_cannot_make_the_authorizer_hammer_the_issuer(stack: Stack, jwks_issuer: JwksIssuer) -> None:
    attempts = 20
    with JwksIssuer(SUPABASE_ISSUER) as attacker:
        before, started = jwks_issuer.fetch_count, time.monotonic()
        for n in range(attempts):
            kid = attacker.add_key("ES256", f"random-{n}-{uuid.uuid4().hex[:6]}")
            assert_problem(call(stack, supabase_token(attacker, kid)), 401, "UNAUTHORIZED")
        elapsed = time.monotonic() - started
        fetches = jwks_issuer.fetch_count - before
    # Each authorizer environment refetches at most once per interval (and once more at its TTL).
    environments = 3
    bound = environments * (int(elapsed / SUPABASE_JWKS_REFETCH_INTERVAL_S) + 2)
    print(f"\n{attempts} made-up kids in {elapsed:.1f} s: {fetches} JWKS fetches (bound {bound})")
    assert fetches <= min(bound, attempts - 1)


def _hs256_by_hand(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    signing_input = f"{part(header)}.{part(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def test_algorithm_confusion_with_the_published_rsa_key_is_refused(stack: Stack, jwks_issuer: JwksIssuer) -> None:
    public_pem = jwks_issuer.public_pem(SUPABASE_RS_KID)
    header = {"alg": "HS256", "typ": "JWT", "kid": SUPABASE_RS_KID}
    assert_problem(call(stack, _hs256_by_hand(header, supabase_claims(), public_pem)), 401, "UNAUTHORIZED")
    # The same trick against the HS256 issuer: its secret is not the public key either.
    hs_claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": "x", "exp": int(time.time()) + 60, "role": "deployer"}
    assert_problem(call(stack, _hs256_by_hand(header, hs_claims, public_pem)), 401, "UNAUTHORIZED")


def test_alg_none_is_refused_for_the_jwks_issuer(stack: Stack) -> None:
    assert_problem(call(stack, _none_alg(supabase_claims())), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "kid",
    ["../../../../etc/passwd", "' OR '1'='1", "supabase-rs256\u0000", "x" * 2000, 12345, None],
    ids=["path", "sql", "nul", "long", "number", "absent-ambiguous"],
)
def test_kid_header_injection_is_refused(stack: Stack, jwks_issuer: JwksIssuer, kid: object) -> None:
    with JwksIssuer(SUPABASE_ISSUER) as attacker:
        attacker.add_key("RS256", "attacker")
        # kid None leaves the header without a kid: the only RSA key of the JWKS is tried, and fails.
        forged = attacker.sign(supabase_claims(), "attacker", headers={"kid": kid})
        assert_problem(call(stack, forged), 401, "UNAUTHORIZED")


def test_jku_x5u_and_embedded_jwk_headers_are_never_used(stack: Stack) -> None:
    with JwksIssuer(SUPABASE_ISSUER) as attacker:
        kid = attacker.add_key("RS256")
        (embedded,) = attacker.jwks()["keys"]
        forged = attacker.sign(
            supabase_claims(), kid, headers={"jku": attacker.jwks_url(), "x5u": attacker.jwks_url(), "jwk": embedded}
        )
        assert_problem(call(stack, forged), 401, "UNAUTHORIZED")
        assert attacker.fetch_count == 0
