"""Admin requests: issuing, listing and revoking API keys."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cmdgate import errors
from cmdgate.auth import ApiKeyStore, Principal
from cmdgate.authz import authorize
from cmdgate.callbacks.signing import SigningSecrets, SigningSecretsConflict
from cmdgate.pagination import decode_cursor, encode_cursor

Permission = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:*-]+$")]


class RateLimitSpec(BaseModel):
    """A key's rate-limit policy: `quota` requests per `window_s` seconds."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    quota: int = Field(ge=1, le=1_000_000)
    window_s: int = Field(ge=1, le=86_400)


class CreateKeyRequest(BaseModel):
    """Body of `POST /v1/admin/keys`."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=128)
    permissions: list[Permission] = Field(min_length=1, max_length=100)
    rate_limit: RateLimitSpec | None = None
    expires_at: int | None = Field(default=None, ge=0, description="Epoch seconds after which the key stops working.")


class RedriveRequest(BaseModel):
    """Body of `POST /v1/admin/dlq/redrive`: which executions (all dead letters of the first page if absent)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    execution_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(default=None, max_length=100)


class RecoverStateRequest(BaseModel):
    """Body of `POST /v1/admin/state/recover`: where to start (the previous answer's `next`), what to cover."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    namespaces: list[Annotated[str, Field(pattern=r"^(_default|[a-z0-9][a-z0-9_-]{0,127})$")]] | None = Field(
        default=None, max_length=100, description="Only these namespaces' gists (default: every one)."
    )
    gists: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,64}$")]] | None = Field(
        default=None, max_length=1000, description="The gists left (the previous answer's `next.gists`)."
    )
    skip: int = Field(default=0, ge=0, le=1_000_000, description="Revisions of the first gist already walked.")
    max_revisions: int = Field(default=100, ge=1, le=1000, description="Revisions walked per gist, newest first.")


class SigningSecretRequest(BaseModel):
    """Body of `POST /v1/admin/signing-secrets`."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    principal_id: str = Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")
    grace_s: int = Field(
        default=86400, ge=0, le=7 * 86400, description="How long the replaced secret keeps signing (0: not at all)."
    )


class CreatedSigningSecret(BaseModel):
    """A new signing secret: shown in this answer only."""

    principal_id: str
    secret_id: str
    secret: str = Field(description="`whsec_` + base64 of 32 bytes: the HMAC key is the decoded part.")
    created_at: int
    previous_valid_until: int | None = Field(description="Epoch seconds until which the replaced secret also signs.")


class CreatedKey(BaseModel):
    """Answer of `POST /v1/admin/keys`: the key is shown only this once."""

    key_id: str
    api_key: str


class SigningSecretConflict(errors.ProblemError):
    status, code, title = 409, "SIGNING_SECRET_CONFLICT", "Signing secret rotation in progress"


def rotate_signing_secret(secrets: SigningSecrets, request: SigningSecretRequest) -> CreatedSigningSecret:
    """A new signing secret for the principal's callbacks; the previous one signs for `grace_s` more."""
    try:
        created = secrets.rotate(request.principal_id, request.grace_s)
    except SigningSecretsConflict:
        raise SigningSecretConflict(
            "Another rotation of this principal's secret is in progress.", headers={"Retry-After": "1"}
        ) from None
    return CreatedSigningSecret(**created.view())


def require_admin(principal: Principal) -> None:
    """Defence in depth: the authorizer's policy already limits admin routes to admins."""
    authorize(principal, "admin")


def create_key(keys: ApiKeyStore, request: CreateKeyRequest) -> CreatedKey:
    """Issue a key."""
    rate_limit = request.rate_limit.model_dump() if request.rate_limit else {}
    api_key, record = keys.create(request.name, list(request.permissions), rate_limit, expires_at=request.expires_at)
    return CreatedKey(key_id=record.key_id, api_key=api_key)


def list_keys(keys: ApiKeyStore, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of keys and the cursor for the next."""
    records, last = keys.list_page(limit, decode_cursor(cursor, frozenset({"key_hash"})))
    return {"keys": [r.public_view() for r in records], "next_cursor": encode_cursor(last)}


def revoke_key(keys: ApiKeyStore, key_id: str) -> None:
    """Revoke a key by id (404 if unknown)."""
    if not (0 < len(key_id) <= 64 and key_id.isalnum()) or not keys.revoke(key_id):
        raise errors.NotFound(f"No key {key_id!r}.")
