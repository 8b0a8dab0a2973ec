"""The three webhook signature schemes: GitHub's published test vector, Stripe's v1 list, Standard Webhooks."""

from __future__ import annotations

import base64
import hmac
from typing import Any

import pytest

from cmdgate.callbacks.signing import signature_header
from cmdgate.webhooks.errors import WebhookSignatureInvalid, WebhookStale
from cmdgate.webhooks.signatures import (
    github_signature,
    stripe_signature,
    verify_github,
    verify_standard,
    verify_stripe,
)

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_PAYLOAD = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
NOW = 1_764_590_000
STRIPE_SECRET = "whsec_stripe_test_secret"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = b'{"id":"evt_1","type":"invoice.paid"}'


def test_githubs_published_test_vector() -> None:
    assert github_signature(GITHUB_SECRET.encode(), GITHUB_PAYLOAD) == GITHUB_SIGNATURE
    verify_github({"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_PAYLOAD, [GITHUB_SECRET])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": GITHUB_SIGNATURE.replace("sha256=", "sha1=")},
        {"X-Hub-Signature-256": GITHUB_SIGNATURE[:-1] + "0"},
        {"X-Hub-Signature-256": GITHUB_SIGNATURE + "00"},
        {"X-Hub-Signature-256": "sha256=" + "z" * 64},
    ],
)
def test_github_refuses_a_missing_or_wrong_signature(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify_github(headers, GITHUB_PAYLOAD, [GITHUB_SECRET])


def test_github_refuses_another_body_or_secret_and_accepts_any_secret_of_a_rotation() -> None:
    headers = {"x-hub-signature-256": GITHUB_SIGNATURE}  # header names are case-insensitive
    with pytest.raises(WebhookSignatureInvalid):
        verify_github(headers, b"Hello, World?", [GITHUB_SECRET])
    with pytest.raises(WebhookSignatureInvalid):
        verify_github(headers, GITHUB_PAYLOAD, ["another secret"])
    verify_github(headers, GITHUB_PAYLOAD, ["the new secret", GITHUB_SECRET])


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module signatures calls through
    verify_github({"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_PAYLOAD, [GITHUB_SECRET])
    header = f"t={NOW},v1={stripe_signature(STRIPE_SECRET, NOW, BODY)}"
    verify_stripe({"Stripe-Signature": header}, BODY, [STRIPE_SECRET], NOW)
    assert len(calls) == 2


def stripe_header(timestamp: int, *secrets: str, body: bytes = BODY) -> dict[str, str]:
    parts = [f"t={timestamp}", *(f"v1={stripe_signature(s, timestamp, body)}" for s in secrets), "v0=ignored"]
    return {"Stripe-Signature": ",".join(parts)}


def test_stripe_accepts_any_v1_of_a_rotation() -> None:
    verify_stripe(stripe_header(NOW, STRIPE_SECRET), BODY, [STRIPE_SECRET], NOW)
    # Stripe signs with both secrets while one is being rolled: either may be the one we hold.
    verify_stripe(stripe_header(NOW, "whsec_old", STRIPE_SECRET), BODY, [STRIPE_SECRET], NOW)
    verify_stripe(stripe_header(NOW, STRIPE_SECRET), BODY, ["whsec_next", STRIPE_SECRET], NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Stripe-Signature": f"t={NOW}"},
        {"Stripe-Signature": "v1=" + "a" * 64},
        {"Stripe-Signature": "garbage"},
        stripe_header(NOW, "whsec_wrong"),
        stripe_header(NOW, STRIPE_SECRET, body=b"{}"),
        {"Stripe-Signature": stripe_header(NOW, STRIPE_SECRET)["Stripe-Signature"].replace(f"t={NOW}", f"t={NOW + 1}")},
    ],
)
def test_stripe_refuses_a_missing_or_wrong_signature(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify_stripe(headers, BODY, [STRIPE_SECRET], NOW)


def test_stripe_refuses_a_stale_timestamp_only_once_the_signature_holds() -> None:
    verify_stripe(stripe_header(NOW - 300, STRIPE_SECRET), BODY, [STRIPE_SECRET], NOW)
    with pytest.raises(WebhookStale):
        verify_stripe(stripe_header(NOW - 301, STRIPE_SECRET), BODY, [STRIPE_SECRET], NOW)
    with pytest.raises(WebhookStale):
        verify_stripe(stripe_header(NOW + 301, STRIPE_SECRET), BODY, [STRIPE_SECRET], NOW)
    with pytest.raises(WebhookSignatureInvalid):  # mis-signed and stale: 401, not 400
        verify_stripe(stripe_header(NOW - 3600, "whsec_wrong"), BODY, [STRIPE_SECRET], NOW)


def standard_headers(timestamp: int, *secrets: str, webhook_id: str = "msg_1", body: bytes = BODY) -> dict[str, str]:
    keys = [base64.b64decode(s.removeprefix("whsec_")) for s in secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        # cmdgate's own callback signer: what it sends, the receiver accepts.
        "webhook-signature": signature_header(keys, webhook_id, timestamp, body),
    }


def test_standard_webhooks_verify_what_the_callback_signer_signs() -> None:
    verify_standard(standard_headers(NOW, STANDARD_SECRET), BODY, [STANDARD_SECRET], NOW)
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    verify_standard(standard_headers(NOW, other, STANDARD_SECRET), BODY, [STANDARD_SECRET], NOW)
    verify_standard(standard_headers(NOW, STANDARD_SECRET), BODY, [other, STANDARD_SECRET], NOW)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-signature": None},
        {"webhook-id": None},
        {"webhook-timestamp": None},
        {"webhook-timestamp": "soon"},
        {"webhook-id": "msg_2"},  # the id is signed
        {"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()},
        {"webhook-signature": "v2,abc"},
    ],
)
def test_standard_webhooks_refuse_a_missing_or_wrong_signature(change: dict[str, str | None]) -> None:
    headers: dict[str, str] = {
        k: v for k, v in {**standard_headers(NOW, STANDARD_SECRET), **change}.items() if v is not None
    }
    with pytest.raises(WebhookSignatureInvalid):
        verify_standard(headers, BODY, [STANDARD_SECRET], NOW)


def test_standard_webhooks_refuse_a_stale_timestamp() -> None:
    verify_standard(standard_headers(NOW - 300, STANDARD_SECRET), BODY, [STANDARD_SECRET], NOW)
    with pytest.raises(WebhookStale):
        verify_standard(standard_headers(NOW - 301, STANDARD_SECRET), BODY, [STANDARD_SECRET], NOW)
    with pytest.raises(WebhookSignatureInvalid):
        verify_standard(standard_headers(NOW - 301, STANDARD_SECRET), b"{}", [STANDARD_SECRET], NOW)
