"""The Lambda REQUEST authorizer's logic: bearer token -> principal -> policy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from cmdgate.auth.apikeys import ApiKeyStore
from cmdgate.auth.permissions import Principal
from cmdgate.auth.policy import allow_policy


class AuthenticationFailed(Exception):
    """No usable credential; the handler turns it into API Gateway's 401."""


def bearer_token(headers: dict[str, Any] | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or raise."""
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token and " " not in token:
                return token
    raise AuthenticationFailed("missing or malformed Authorization header")


class TokenVerifier(Protocol):
    """Verifies a JWT (cmdgate.auth.jwt_tokens.JwtVerifier)."""

    def verify(self, token: str) -> Principal: ...


def authorize_request(
    event: dict[str, Any],
    keys: ApiKeyStore,
    jwt_verifier: Callable[[], TokenVerifier | None] = lambda: None,
    now: float | None = None,
) -> dict[str, Any]:
    """Authenticate the bearer token (a JWT when one is configured and it looks like one, else an API key)."""
    token = bearer_token(event.get("headers"))
    principal = _jwt_principal(token, jwt_verifier) or _api_key_principal(token, keys, now)
    return allow_policy(principal, str(event.get("methodArn", "")))


def _jwt_principal(token: str, jwt_verifier: Callable[[], TokenVerifier | None]) -> Principal | None:
    # API keys never contain dots, so a three-segment token is a JWT or nothing.
    if token.count(".") != 2:
        return None
    verifier = jwt_verifier()
    if verifier is None:
        raise AuthenticationFailed("JWTs are not accepted by this deployment")
    return verifier.verify(token)


def _api_key_principal(token: str, keys: ApiKeyStore, now: float | None) -> Principal:
    record = keys.find_by_key(token)
    if record is None or not record.is_usable(time.time() if now is None else now):
        raise AuthenticationFailed("unknown, revoked or expired key")
    return record.principal()
