"""JWKS documents fetched over HTTP, cached per URL, with a rate-limited refetch for unknown key ids.

One Lambda execution environment handles one request at a time, so the cache
needs no lock; it lives as long as the verifier that owns it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aws_lambda_powertools import Logger
from jwt import PyJWK
from jwt.exceptions import PyJWTError

# A module import, not a name import: the authorizer will import this package's
# verifier, and a name import would then fail on the half-initialised module.
from cmdgate.auth import authorizer

logger = Logger(child=True)

# Which JWK a signature algorithm may use: (kty, crv or None when the kty has no curve).
# HS* is absent on purpose: a JWKS never supplies a shared secret, so an `oct` key
# in a published key set can never become an HMAC key (algorithm confusion).
ALGORITHM_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
}


@dataclass
class _JwksEntry:
    """What is known about one JWKS URL."""

    keys: tuple[dict[str, Any], ...] = ()
    fetched_at: float | None = None  # last successful fetch
    attempted_at: float = 0.0  # last fetch, successful or not
    failed: bool = False


class JwksCache:
    """Public signing keys per JWKS URL: cached for `ttl_s`, refetched at most once per `refetch_interval_s`."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        clock: Callable[[], float],
        ttl_s: float = 600.0,
        refetch_interval_s: float = 60.0,
        failure_backoff_s: float = 5.0,
        max_stale_s: float = 3600.0,
        timeout_s: float = 3.0,
    ) -> None:
        self._http = http
        self._clock = clock
        self._ttl_s = ttl_s
        self._refetch_interval_s = refetch_interval_s
        self._failure_backoff_s = failure_backoff_s
        self._max_stale_s = max_stale_s
        self._timeout = httpx.Timeout(timeout_s)
        self._entries: dict[str, _JwksEntry] = {}

    def signing_key(
        self,
        url: str,
        kid: str | None,
        alg: str,
        *,
        ttl_s: float | None = None,
        refetch_interval_s: float | None = None,
    ) -> PyJWK:
        """The key of `url`'s JWKS that verifies `alg` signatures with id `kid`, or raise AuthenticationFailed.

        `ttl_s` and `refetch_interval_s` override the cache's own for this URL (an issuer's settings).
        """
        if alg not in ALGORITHM_KEY_TYPES:
            raise authorizer.AuthenticationFailed("algorithm not allowed")
        ttl = self._ttl_s if ttl_s is None else ttl_s
        interval = self._refetch_interval_s if refetch_interval_s is None else refetch_interval_s
        now = self._clock()
        entry = self._entries.get(url)
        fetched = False
        if (entry is None or entry.fetched_at is None or now - entry.fetched_at >= ttl) and self._may_fetch(
            entry, now, interval
        ):
            entry = self._fetch(url, now)
            fetched = True
        key = self._find(entry, kid, alg, now, ttl)
        # An unknown kid usually means the issuer rotated keys since the last fetch; the
        # rate limit keeps a flood of made-up kids from turning into a flood of fetches.
        if key is None and not fetched and self._may_fetch(entry, now, interval):
            entry = self._fetch(url, now)
            key = self._find(entry, kid, alg, now, ttl)
        if key is None:
            if entry is None or not self._usable(entry, now, ttl):
                raise authorizer.AuthenticationFailed("issuer signing keys unavailable")
            raise authorizer.AuthenticationFailed("no matching signing key")
        return key

    def _may_fetch(self, entry: _JwksEntry | None, now: float, interval: float) -> bool:
        if entry is None:
            return True
        wait = self._failure_backoff_s if entry.failed else interval
        return now - entry.attempted_at >= wait

    def _usable(self, entry: _JwksEntry, now: float, ttl: float) -> bool:
        # Stale keys beat no keys while the JWKS endpoint is down, but not forever:
        # a key the issuer withdrew must stop working eventually.
        return entry.fetched_at is not None and now - entry.fetched_at < ttl + self._max_stale_s

    def _fetch(self, url: str, now: float) -> _JwksEntry:
        entry = self._entries.setdefault(url, _JwksEntry())
        entry.attempted_at = now
        try:
            response = self._http.get(url, timeout=self._timeout, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"status {response.status_code}")
            document = response.json()
            keys = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(keys, list):
                raise ValueError("no keys list")
        except (httpx.HTTPError, ValueError) as exc:
            entry.failed = True
            logger.warning("JWKS fetch failed", extra={"jwks_url": url, "error": type(exc).__name__})
            return entry
        entry.keys = tuple(k for k in keys if isinstance(k, dict))
        entry.fetched_at = now
        entry.failed = False
        return entry

    def _find(self, entry: _JwksEntry | None, kid: str | None, alg: str, now: float, ttl: float) -> PyJWK | None:
        if entry is None or not self._usable(entry, now, ttl):
            return None
        candidates = [jwk for jwk in entry.keys if _fits(jwk, kid, alg)]
        # Without a kid the choice is only unambiguous when one key fits.
        if len(candidates) != 1:
            return None
        try:
            return PyJWK(candidates[0], algorithm=alg)
        except PyJWTError:
            return None


def _fits(jwk: dict[str, Any], kid: str | None, alg: str) -> bool:
    """True if `jwk` is a signature key of the right type for `alg` with id `kid`."""
    kty, crv = ALGORITHM_KEY_TYPES[alg]
    if kid is not None and jwk.get("kid") != kid:
        return False
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    if jwk.get("alg") not in (None, alg):
        return False
    if jwk.get("use") not in (None, "sig"):
        return False
    key_ops = jwk.get("key_ops")
    return key_ops is None or (isinstance(key_ops, list) and "verify" in key_ops)
