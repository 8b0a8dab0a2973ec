"""POST /v1/webhooks/{source}: a signed delivery from GitHub, Stripe or a Standard Webhooks sender.

No API key: the route is outside the authorizer (`Auth: Authorizer: NONE`), and the signature over the
raw body is the credential (cmdgate.webhooks.receiver). The body gate leaves this route alone: its
size is checked here against its own limit, before anything reads it.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from cmdgate import errors
from cmdgate.api_docs import WEBHOOK_LOCATION, WebhookAccepted, WebhookSourceName, responses
from cmdgate.audit import stamp_from_event
from cmdgate.body import body_bytes
from cmdgate.http import http_response
from routes.services import services

router = APIGatewayRouter()


@router.post(
    "/v1/webhooks/<source>",
    tags=["webhooks"],
    operation_id="receiveWebhook",
    responses=responses(
        {202: ("Verified: the run it started (the same for a redelivery), or recorded unmapped", WebhookAccepted)},
        *(400, 401, 404, 413, 415, 429, 503),
        authenticated=False,
        headers={202: WEBHOOK_LOCATION},
    ),
)
def receive_webhook(source: WebhookSourceName) -> Response[str]:
    """Verify a delivery's signature (and freshness), then start the run its event type maps to, once."""
    event = router.current_event
    limit = services().settings.webhook_max_body_bytes
    raw = event.get("body") or ""
    body = body_bytes(raw, bool(event.get("isBase64Encoded"))) if raw else b""
    if len(body) > limit:
        raise errors.PayloadTooLarge(f"A webhook delivery is at most {limit} bytes.")
    submission = services().webhooks.receive(
        source, event.headers, body, stamp_from_event(event.raw_event, "-", action="webhook.accepted")
    )
    return http_response(submission.to_http(event.request_context.request_id))
