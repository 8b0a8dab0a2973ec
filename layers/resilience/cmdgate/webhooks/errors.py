"""The problems a webhook delivery can be refused with (before anything runs)."""

from __future__ import annotations

from cmdgate import errors


class WebhookSourceNotFound(errors.NotFound):
    code, title = "WEBHOOK_SOURCE_NOT_FOUND", "Unknown webhook source"


class WebhookSignatureInvalid(errors.ProblemError):
    """Unsigned, mis-signed, or signed with a secret this source does not hold."""

    status, code, title = 401, "WEBHOOK_SIGNATURE_INVALID", "Webhook signature invalid"


class WebhookStale(errors.ProblemError):
    """Correctly signed, but its signed timestamp is outside the tolerance (a replay, or a skewed clock)."""

    status, code, title = 400, "WEBHOOK_STALE", "Webhook delivery too old"


class WebhookDeliveryInvalid(errors.ProblemError):
    """Correctly signed, but without what a delivery needs (its identity, its event type, a JSON object)."""

    status, code, title = 400, "WEBHOOK_DELIVERY_INVALID", "Webhook delivery invalid"
