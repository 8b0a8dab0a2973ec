"""The REQUEST authorizer's logic: bearer token parsing, then key -> principal -> policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cmdgate.auth.apikeys import ApiKeyStore
from cmdgate.auth.authorizer import AuthenticationFailed, authorize_request, bearer_token
from cmdgate.auth.permissions import Principal
from cmdgate_local.apigw import evaluate_policy

BASE = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"authorization": "bearer abc"}, "abc"),
        ({"AUTHORIZATION": "BEARER abc"}, "abc"),
        ({"Authorization": "bEaReR cg_x-y_z"}, "cg_x-y_z"),
        ({"Authorization": "Bearer    abc"}, "abc"),
        ({"Authorization": "  Bearer abc  "}, "abc"),
        ({"Content-Type": "application/json", "Authorization": "Bearer abc"}, "abc"),
        ({"authorization": 5, "Authorization": "Bearer second"}, "second"),
    ],
)
def test_bearer_token_accepts(headers: dict[str, Any], token: str) -> None:
    assert bearer_token(headers) == token


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"X-Authorization": "Bearer abc"},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer      "},
        {"Authorization": "Bearer abc def"},
        {"Authorization": "Bearer abc  def"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearerabc"},
        {"Authorization": "abc"},
        {"Authorization": "Token abc"},
        {"Authorization": None},
        {"Authorization": 123},
        {"Authorization": ["Bearer abc"]},
        {"Authorization": b"Bearer abc"},
    ],
)
def test_bearer_token_refuses(headers: dict[str, Any] | None) -> None:
    with pytest.raises(AuthenticationFailed):
        bearer_token(headers)


@pytest.fixture
def store(table_like: Callable[[str], Any]) -> ApiKeyStore:
    return ApiKeyStore(table_like("KeysTable"))


def event(token: str | None, method: str = "GET", path: str = "/v1/commands") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return {"type": "REQUEST", "methodArn": f"{BASE}/{method}{path}", "headers": headers}


def test_authorize_request_end_to_end(store: ApiKeyStore) -> None:
    key, record = store.create("ci", ["commands.run:deploy.*", "commands.list"], {"quota": 5, "window_s": 1})
    response = authorize_request(event(key, "POST", "/v1/commands/deploy.prod"), store)
    assert response["principalId"] == f"key:{record.key_id}"
    principal = Principal.from_authorizer_context(response["context"])
    assert principal == record.principal()
    document = response["policyDocument"]
    assert evaluate_policy(document, f"{BASE}/POST/v1/commands/deploy.prod")
    assert evaluate_policy(document, f"{BASE}/GET/v1/commands")
    assert evaluate_policy(document, f"{BASE}/GET/v1/executions/abc")
    assert not evaluate_policy(document, f"{BASE}/GET/v1/admin/keys")
    assert not evaluate_policy(document, f"{BASE}/PUT/v1/state/team-a.config")


def test_unknown_key_is_refused(store: ApiKeyStore) -> None:
    store.create("ci", ["admin"])
    with pytest.raises(AuthenticationFailed):
        authorize_request(event("cg_not_issued"), store)


def test_missing_header_is_refused_before_any_lookup() -> None:
    class ExplodingStore(ApiKeyStore):
        def __init__(self) -> None:
            super().__init__(None)

        def find_by_key(self, api_key: str) -> None:
            raise AssertionError("looked up a key although the header was missing")

    with pytest.raises(AuthenticationFailed):
        authorize_request(event(None), ExplodingStore())
    with pytest.raises(AuthenticationFailed):
        authorize_request({"methodArn": f"{BASE}/GET/v1/commands"}, ExplodingStore())


def test_revoked_key_is_refused(store: ApiKeyStore) -> None:
    key, record = store.create("ci", ["admin"])
    assert authorize_request(event(key), store)["principalId"] == f"key:{record.key_id}"
    assert store.revoke(record.key_id)
    with pytest.raises(AuthenticationFailed):
        authorize_request(event(key), store)


def test_expired_key_is_refused(store: ApiKeyStore) -> None:
    key, _ = store.create("temp", ["admin"], expires_at=1_000)
    assert authorize_request(event(key), store, now=999.5)["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    with pytest.raises(AuthenticationFailed):
        authorize_request(event(key), store, now=1_000)
    with pytest.raises(AuthenticationFailed):
        authorize_request(event(key), store)  # the real clock is long past 1970


def test_key_with_no_permissions_authenticates_but_reaches_only_executions(store: ApiKeyStore) -> None:
    key, _ = store.create("bare", [])
    document = authorize_request(event(key), store)["policyDocument"]
    assert not evaluate_policy(document, f"{BASE}/GET/v1/commands")
    assert evaluate_policy(document, f"{BASE}/GET/v1/executions/abc")


class FakeJwtVerifier:
    """Stands in for JwtVerifier (tested on its own): accepts one token."""

    def __init__(self) -> None:
        self.verified: list[str] = []

    def verify(self, token: str) -> Principal:
        self.verified.append(token)
        if token != "h.p.s":
            raise AuthenticationFailed("bad signature")
        return Principal("https://issuer.example|user-1", ("commands.list",), kind="jwt")


def test_a_jwt_goes_to_the_verifier_and_never_to_the_keys_table(store: ApiKeyStore) -> None:
    store.create("dotted", ["admin"], api_key="h.p.s")  # even a key spelled like a JWT is not looked up
    verifier = FakeJwtVerifier()
    response = authorize_request(event("h.p.s"), store, lambda: verifier)
    assert verifier.verified == ["h.p.s"]
    assert response["principalId"] == "https://issuer.example|user-1"
    assert Principal.from_authorizer_context(response["context"]) == verifier.verify("h.p.s")
    document = response["policyDocument"]
    assert evaluate_policy(document, f"{BASE}/GET/v1/commands")
    assert not evaluate_policy(document, f"{BASE}/GET/v1/admin/keys")
    with pytest.raises(AuthenticationFailed):
        authorize_request(event("h.p.forged"), store, lambda: verifier)


def test_a_jwt_is_refused_when_no_issuer_is_configured(store: ApiKeyStore) -> None:
    store.create("dotted", ["admin"], api_key="h.p.s")
    with pytest.raises(AuthenticationFailed):
        authorize_request(event("h.p.s"), store)


@pytest.mark.parametrize("token", ["a.b", "a.b.c.d", "nodots"])
def test_tokens_without_exactly_two_dots_are_api_keys(store: ApiKeyStore, token: str) -> None:
    _, record = store.create("k", ["commands.list"], api_key=token)

    def no_verifier() -> FakeJwtVerifier:
        raise AssertionError("asked for the JWT verifier for an API key")

    assert authorize_request(event(token), store, no_verifier)["principalId"] == f"key:{record.key_id}"


def test_admin_is_authorized_on_a_path_with_a_colon(store: ApiKeyStore) -> None:
    key, _ = store.create("root", ["admin"])
    response = authorize_request(event(key, "POST", "/v1/commands/ops:restart"), store)
    assert evaluate_policy(response["policyDocument"], f"{BASE}/POST/v1/commands/ops:restart")
