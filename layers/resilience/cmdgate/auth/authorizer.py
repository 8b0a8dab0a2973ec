"""The Lambda REQUEST authorizer's logic: bearer token -> principal -> policy."""

from __future__ import annotations

import time
from typing import Any

from cmdgate.auth.apikeys import ApiKeyStore
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


def authorize_request(event: dict[str, Any], keys: ApiKeyStore, now: float | None = None) -> dict[str, Any]:
    """Authenticate the request's bearer token and build the policy for its principal."""
    token = bearer_token(event.get("headers"))
    record = keys.find_by_key(token)
    if record is None or not record.is_usable(time.time() if now is None else now):
        raise AuthenticationFailed("unknown, revoked or expired key")
    return allow_policy(record.principal(), str(event.get("methodArn", "")))
