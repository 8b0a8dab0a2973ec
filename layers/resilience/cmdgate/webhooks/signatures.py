"""Signature checks of the three webhook kinds, on the raw body, in constant time.

- `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`; nothing time-bound is signed.
- `stripe`: `Stripe-Signature: t=<epoch s>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>[,v1=...]`: any
  `v1` may match (Stripe sends one per secret during a rotation); `t` must be within the tolerance.
- `standard`: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
  entries separated by spaces), verified with the same `cmdgate.callbacks.signing.sign` that signs
  cmdgate's own callbacks; `webhook-timestamp` must be within the tolerance.

Each verifier gets every secret the source holds (a rotation: old and new) and accepts a match with
any of them. The signature is checked before the timestamp: an unsigned or mis-signed delivery is 401
whatever its age; a correctly signed stale one is 400. Comparisons are `hmac.compare_digest` over
equal-length digests, so the time taken says nothing about how much of a signature was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from cmdgate.callbacks.signing import secret_bytes, sign
from cmdgate.webhooks.errors import WebhookSignatureInvalid, WebhookStale

TOLERANCE_S = 300
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MAX_SIGNATURE_HEADER = 4096  # a few signatures; anything longer is not one


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, case-insensitively (API Gateway passes them as sent)."""
    wanted = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == wanted:
            return value
    return None


def github_signature(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github(headers: Mapping[str, str] | None, body: bytes, secrets: Sequence[str]) -> None:
    """Raise WebhookSignatureInvalid unless `X-Hub-Signature-256` is the HMAC of `body` under one secret."""
    given = _bounded(header(headers, "X-Hub-Signature-256"))
    scheme, _, digest = given.partition("=")
    if scheme != "sha256" or not _HEX_SHA256.fullmatch(digest):
        raise WebhookSignatureInvalid("X-Hub-Signature-256 is missing or not sha256=<hex>.")
    candidate = bytes.fromhex(digest)
    if not any(hmac.compare_digest(hmac.new(s.encode(), body, hashlib.sha256).digest(), candidate) for s in secrets):
        raise WebhookSignatureInvalid("The signature does not match the body.")


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `v1` signature Stripe computes (its secret, `whsec_...`, is the HMAC key as text)."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_stripe(
    headers: Mapping[str, str] | None, body: bytes, secrets: Sequence[str], now: float, tolerance_s: int = TOLERANCE_S
) -> None:
    """Raise WebhookSignatureInvalid unless some `v1` matches under some secret, then WebhookStale if `t` is old."""
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in _bounded(header(headers, "Stripe-Signature")).split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and _HEX_SHA256.fullmatch(value):
            candidates.append(bytes.fromhex(value))
    if timestamp is None or not candidates:
        raise WebhookSignatureInvalid("Stripe-Signature is missing, or has no t= or v1= entry.")
    signed = str(timestamp).encode() + b"." + body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).digest() for s in secrets]
    if not _any_match(expected, candidates):
        raise WebhookSignatureInvalid("No v1 signature matches the body.")
    _check_fresh(timestamp, now, tolerance_s, "t")


def verify_standard(
    headers: Mapping[str, str] | None, body: bytes, secrets: Sequence[str], now: float, tolerance_s: int = TOLERANCE_S
) -> None:
    """Raise WebhookSignatureInvalid unless a `v1,` entry matches under some secret, then WebhookStale if old."""
    webhook_id = header(headers, "webhook-id") or ""
    raw_timestamp = (header(headers, "webhook-timestamp") or "").strip()
    entries = _bounded(header(headers, "webhook-signature")).split()
    if not webhook_id or not raw_timestamp.isdigit() or len(raw_timestamp) > 12 or not entries:
        raise WebhookSignatureInvalid("webhook-id, webhook-timestamp or webhook-signature is missing.")
    timestamp = int(raw_timestamp)
    given = [entry.encode() for entry in entries if entry.startswith("v1,")]
    try:
        keys = [secret_bytes(s) for s in secrets]
    except ValueError:
        raise WebhookSignatureInvalid("The source's secret is not a whsec_ secret.") from None
    expected = [sign(key, webhook_id, timestamp, body).encode() for key in keys]
    if not _any_match(expected, given):
        raise WebhookSignatureInvalid("No v1 signature matches the body.")
    _check_fresh(timestamp, now, tolerance_s, "webhook-timestamp")


def _any_match(expected: Sequence[bytes], given: Sequence[bytes]) -> bool:
    # Every pair is compared (no early exit), each in constant time.
    matched = False
    for mine in expected:
        for theirs in given:
            matched |= hmac.compare_digest(mine, theirs)
    return matched


def _check_fresh(timestamp: int, now: float, tolerance_s: int, name: str) -> None:
    if abs(now - timestamp) > tolerance_s:
        raise WebhookStale(f"The signed {name} is more than {tolerance_s} s away from now.")


def _bounded(value: str | None) -> str:
    if not value or len(value) > _MAX_SIGNATURE_HEADER:
        return ""
    return value
