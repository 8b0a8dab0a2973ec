"""JWT bearer tokens from configured issuers: verified signature, pinned algorithms, checked claims -> Principal.

An issuer is either a JWKS issuer (RS256/ES256, public keys fetched from its
`jwks_url`) or a shared-secret issuer (HS256, secret in Secrets Manager),
never both, so a public key can never be used as an HMAC secret.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import jwt
from aws_lambda_powertools import Logger
from jwt.exceptions import (
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator, model_validator

# A module import, not a name import: the authorizer will import this module,
# and a name import would then fail on the half-initialised authorizer module.
from cmdgate.auth import authorizer
from cmdgate.auth.jwks import JwksCache
from cmdgate.auth.permissions import Principal

logger = Logger(child=True)

JwtAlgorithm = Literal["RS256", "ES256", "HS256"]

JWKS_ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256"})
SECRET_ALGORITHMS: frozenset[str] = frozenset({"HS256"})

# API Gateway caps a request's headers near 10 KiB; anything longer is not a token we issued.
MAX_JWT_LENGTH = 8192

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]*={0,2}")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# The validation context key that lets a jwks_url be plain http on a loopback host (a local stack only).
ALLOW_LOOPBACK_HTTP = "allow_loopback_http"


class JwtIssuer(BaseModel):
    """One trusted token issuer: how to verify its tokens and which permissions they carry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1)
    audience: str | tuple[str, ...]
    algorithms: tuple[JwtAlgorithm, ...] = Field(min_length=1)
    # Where the issuer publishes its keys; need not share a host or path with `issuer`
    # (Supabase: `<issuer>/.well-known/jwks.json`; an OIDC issuer: its discovery document's jwks_uri).
    jwks_url: str | None = None
    hs256_secret_arn: str | None = None
    # How long fetched keys are used (None: the verifier's default, 600 s), and how often at most an
    # unknown kid may refetch them: a flood of made-up kids costs the issuer one fetch per interval.
    jwks_ttl_s: float | None = Field(default=None, ge=1, le=86400)
    jwks_refetch_interval_s: float = Field(default=60.0, ge=1, le=3600)
    leeway_s: float = Field(default=60.0, ge=0, le=600)
    permissions_claim: str = Field(default="permissions", min_length=1)
    claim_permissions: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    default_permissions: tuple[str, ...] = ()

    @field_validator("issuer")
    @classmethod
    def _issuer_without_separator(cls, value: str) -> str:
        # `|` separates iss from sub in the principal id; keeping it out of iss keeps the id unambiguous.
        if "|" in value:
            raise ValueError("issuer must not contain '|'")
        return value

    @field_validator("audience")
    @classmethod
    def _audience_not_empty(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if not value or (isinstance(value, tuple) and not all(value)):
            raise ValueError("audience must not be empty")
        return value

    @field_validator("claim_permissions")
    @classmethod
    def _claim_value_keys(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for key in value:
            claim, sep, _ = key.partition("=")
            if not sep or not claim:
                raise ValueError(f"claim_permissions key {key!r} is not 'claim=value'")
        return value

    @model_validator(mode="after")
    def _one_key_source(self, info: ValidationInfo) -> JwtIssuer:
        algorithms = set(self.algorithms)
        if algorithms <= JWKS_ALGORITHMS:
            if not self.jwks_url or self.hs256_secret_arn:
                raise ValueError("RS256/ES256 issuers need jwks_url and no hs256_secret_arn")
            url = urlsplit(self.jwks_url)
            # Keys fetched in clear text could be swapped in transit: plain http only on a loopback
            # host, and only where the deployment says so (the local stack's JWKS_ALLOW_LOOPBACK_HTTP).
            loopback_http = bool((info.context or {}).get(ALLOW_LOOPBACK_HTTP)) and url.hostname in _LOOPBACK_HOSTS
            if not (url.scheme == "https" or (url.scheme == "http" and loopback_http)):
                raise ValueError("jwks_url must be https (plain http only for a loopback host on a local stack)")
            if not url.hostname:
                raise ValueError("jwks_url has no host")
        elif algorithms <= SECRET_ALGORITHMS:
            if not self.hs256_secret_arn or self.jwks_url:
                raise ValueError("HS256 issuers need hs256_secret_arn and no jwks_url")
        else:
            raise ValueError("algorithms mix asymmetric (RS256/ES256) and shared-secret (HS256) families")
        return self

    @property
    def uses_jwks(self) -> bool:
        """True for an RS256/ES256 issuer whose keys come from `jwks_url`."""
        return self.jwks_url is not None


_ISSUERS = TypeAdapter(list[JwtIssuer])


def parse_jwt_issuers(raw: str, *, allow_loopback_http: bool = False) -> tuple[JwtIssuer, ...]:
    """Issuers from a JSON list (e.g. the JWT_ISSUERS env var); blank means none; raise ValueError if invalid.

    `allow_loopback_http` lets a jwks_url be `http://` on localhost, 127.0.0.1 or ::1 (a local stack).
    """
    if not raw.strip():
        return ()
    issuers = tuple(_ISSUERS.validate_json(raw, context={ALLOW_LOOPBACK_HTTP: allow_loopback_http}))
    _unique_by_issuer(issuers)
    return issuers


def looks_like_jwt(token: str) -> bool:
    """True if `token` has the shape of a compact JWS: three dot-separated base64url segments."""
    return len(token) <= MAX_JWT_LENGTH and _JWT_SHAPE.fullmatch(token) is not None


class JwtVerifier:
    """Verifies bearer JWTs against the configured issuers and turns them into principals."""

    def __init__(
        self,
        issuers: Iterable[JwtIssuer],
        *,
        http: httpx.Client,
        secret_provider: Callable[[str], str],
        clock: Callable[[], float] = time.time,
        jwks_ttl_s: float = 600,
    ) -> None:
        self._issuers = _unique_by_issuer(tuple(issuers))
        self._secret_provider = secret_provider
        self._clock = clock
        self._jwks = JwksCache(http, clock=clock, ttl_s=jwks_ttl_s)

    def verify(self, token: str) -> Principal:
        """The principal a valid token vouches for; raise AuthenticationFailed for anything else."""
        if not isinstance(token, str) or not looks_like_jwt(token):
            raise authorizer.AuthenticationFailed("malformed token")
        header, unverified = _unverified_parts(token)
        # The unverified iss only picks where the key comes from; the signature check
        # below (with that issuer's pinned algorithms) is what makes it trustworthy.
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise authorizer.AuthenticationFailed("unknown issuer")
        alg = header.get("alg")
        # Checked before any key is fetched, so `none` or a foreign family costs no I/O.
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise authorizer.AuthenticationFailed("algorithm not allowed")
        claims = self._decode(token, issuer, self._key_for(issuer, header, alg))
        self._check_times(claims, issuer)
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise authorizer.AuthenticationFailed("missing subject")
        return Principal(
            principal_id=f"{issuer.issuer}|{sub}",
            permissions=_permissions(claims, issuer),
            kind="jwt",
        )

    def _key_for(self, issuer: JwtIssuer, header: dict[str, Any], alg: str) -> jwt.PyJWK | str:
        if issuer.jwks_url is not None:
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise authorizer.AuthenticationFailed("malformed token")
            return self._jwks.signing_key(
                issuer.jwks_url,
                kid,
                alg,
                ttl_s=issuer.jwks_ttl_s,
                refetch_interval_s=issuer.jwks_refetch_interval_s,
            )
        assert issuer.hs256_secret_arn is not None  # guaranteed by JwtIssuer's validator
        try:
            secret = self._secret_provider(issuer.hs256_secret_arn)
        except Exception as exc:  # noqa: BLE001 - the provider's errors are its own; any of them means no key
            logger.warning("JWT secret unavailable", extra={"issuer": issuer.issuer, "error": type(exc).__name__})
            raise authorizer.AuthenticationFailed("issuer secret unavailable") from None
        if not isinstance(secret, str) or not secret:
            logger.warning("JWT secret empty or not a string", extra={"issuer": issuer.issuer})
            raise authorizer.AuthenticationFailed("issuer secret unavailable")
        return secret

    def _decode(self, token: str, issuer: JwtIssuer, key: jwt.PyJWK | str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=list(issuer.algorithms),
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway_s,
                options={
                    "require": ["exp", "iss", "sub"],
                    # PyJWT reads the wall clock itself; times are checked in _check_times
                    # against the injected clock instead, with the same leeway.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    # Refuse short HMAC secrets and small RSA keys instead of warning.
                    "enforce_minimum_key_length": True,
                },
            )
        except InvalidKeyError:
            # The token cannot make a key unusable: this is configuration or the JWKS.
            logger.warning("JWT issuer key unusable", extra={"issuer": issuer.issuer})
            raise authorizer.AuthenticationFailed("issuer key unusable") from None
        except PyJWTError as exc:
            raise authorizer.AuthenticationFailed(_reason(exc)) from None

    def _check_times(self, claims: dict[str, Any], issuer: JwtIssuer) -> None:
        now = self._clock()
        leeway = issuer.leeway_s
        exp = _numeric_date(claims, "exp")
        if exp is None or exp <= now - leeway:
            raise authorizer.AuthenticationFailed("token expired")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and nbf > now + leeway:
            raise authorizer.AuthenticationFailed("token not yet valid")
        iat = _numeric_date(claims, "iat")
        if iat is not None and iat > now + leeway:
            raise authorizer.AuthenticationFailed("token issued in the future")


def _unique_by_issuer(issuers: tuple[JwtIssuer, ...]) -> dict[str, JwtIssuer]:
    by_issuer: dict[str, JwtIssuer] = {}
    for issuer in issuers:
        if issuer.issuer in by_issuer:
            raise ValueError(f"issuer {issuer.issuer!r} configured twice")
        by_issuer[issuer.issuer] = issuer
    return by_issuer


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, signature NOT checked: only for choosing the issuer and key."""
    try:
        decoded = jwt.decode_complete(token, options={"verify_signature": False})
    except PyJWTError:
        raise authorizer.AuthenticationFailed("malformed token") from None
    return decoded["header"], decoded["payload"]


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim, None if absent; raise if present but not a finite number."""
    if name not in claims:
        return None
    value = claims[name]
    # bool is an int subclass, and PyJWT's own check would also accept "123"; neither is a date.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise authorizer.AuthenticationFailed(f"malformed {name}")
    return float(value)


def _permissions(claims: dict[str, Any], issuer: JwtIssuer) -> tuple[str, ...]:
    """Token permissions, then permissions mapped from claims, then defaults; deduplicated in order."""
    found: list[str] = []
    held = claims.get(issuer.permissions_claim)
    if isinstance(held, list):
        found.extend(p for p in held if isinstance(p, str) and p)
    for key, mapped in issuer.claim_permissions.items():
        claim, _, expected = key.partition("=")
        value = claims.get(claim)
        # A string claim matches by equality, a list claim (e.g. groups) by membership;
        # other types never match, so `true` and "true" are not silently confused.
        if value == expected or (isinstance(value, list) and expected in value):
            found.extend(mapped)
    found.extend(issuer.default_permissions)
    return tuple(dict.fromkeys(found))


def _reason(exc: PyJWTError) -> str:
    """A short failure reason with nothing from the token in it."""
    if isinstance(exc, InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, MissingRequiredClaimError):
        return f"missing claim {exc.claim}"  # the claim name is ours, never token content
    return "invalid token"
