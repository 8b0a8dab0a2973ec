"""One inbound delivery, from its raw body to a queued run (or a record of why nothing ran).

In this order, and nothing runs unless every step passes:

1. the source exists (404) and its secrets are at hand (Secrets Manager through Powertools
   Parameters, cached; 503 when they cannot be read);
2. the signature over the raw body (401), then the signed timestamp's freshness (400);
3. the body is a JSON object with the delivery's identity and event type (415, 400);
4. the source's rate limit (429): its own bucket in the rate limiter every caller has;
5. the event type's route: none -> 202 `unmapped`, recorded; else the params template is filled and
   the run prepared as the source's principal, with its permissions (a refusal -> 202 `refused`,
   recorded); the run is queued under an execution id derived from the delivery's identity, so a
   redelivery finds it and gets 202 with the same execution, and nothing runs twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aws_lambda_powertools import Logger

from cmdgate import errors
from cmdgate.audit.stamp import AuditStamp
from cmdgate.auth import Principal
from cmdgate.body import check_media_type
from cmdgate.executions import ExecutionService, Submission
from cmdgate.http import parse_json
from cmdgate.ratelimit.requests import RequestRateLimiter
from cmdgate.webhooks.config import TemplateError, WebhookSource, render_params
from cmdgate.webhooks.deliveries import DeliveryLog, RecordedDelivery
from cmdgate.webhooks.errors import WebhookDeliveryInvalid, WebhookSourceNotFound
from cmdgate.webhooks.signatures import TOLERANCE_S, header, verify_github, verify_standard, verify_stripe

logger = Logger(child=True)
_TOKEN = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces: ids and event types
SecretsProvider = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: who it is from, its identity, what happened."""

    source: str
    delivery_id: str
    event: str
    action: str | None
    payload: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        """The run's idempotency key: the delivery's identity within its source."""
        return f"webhook:{self.source}:{self.delivery_id}"


def webhook_execution_id(source: str, delivery_id: str) -> str:
    """The id of the run a delivery starts: the same for every redelivery of it."""
    return hashlib.sha256(f"webhook\n{source}\n{delivery_id}".encode()).hexdigest()[:32]


class WebhookReceiver:
    """Verifies deliveries and starts (at most once each) the runs they map to."""

    def __init__(
        self,
        sources: Mapping[str, WebhookSource],
        secrets: SecretsProvider,
        executions: ExecutionService,
        limiter: RequestRateLimiter,
        log: DeliveryLog,
        clock: Callable[[], float] = time.time,
        tolerance_s: int = TOLERANCE_S,
    ) -> None:
        self._sources = sources
        self._secrets = secrets
        self._executions = executions
        self._limiter = limiter
        self._log = log
        self._clock = clock
        self._tolerance_s = tolerance_s

    def receive(
        self, source_name: str, headers: Mapping[str, str] | None, body: bytes, request: AuditStamp
    ) -> Submission:
        """The answer to one delivery (raises ProblemError for a refused one); `request` is the delivery's
        request as the audit trail records it (its id and source address)."""
        source = self._sources.get(source_name)
        if source is None:
            raise WebhookSourceNotFound(f"No webhook source {source_name!r}.")
        self.verify(source, headers, body)
        delivery = parse_delivery(source, headers, body)
        self._limiter.admit(
            Principal(f"webhook#{source.name}", (), kind="webhook", rate_limit=source.rate_limit.model_dump())
        )
        stamp = replace(
            request,
            principal_id=source.principal_id,
            action="webhook.accepted",
            idempotency_key=delivery.idempotency_key,
        )
        route = source.route(delivery.event, delivery.action)
        if route is None:
            unmapped = RecordedDelivery(source.name, delivery.delivery_id, delivery.event, "unmapped")
            return self._recorded(unmapped, stamp)
        runner = Principal(source.principal_id, source.permissions, kind="webhook")
        context = {
            "payload": delivery.payload,
            "delivery": {"id": delivery.delivery_id, "event": delivery.event, "source": source.name},
        }

        def prepare() -> Any:
            params = render_params(route.params, context)
            return self._executions.prepare(runner, route.command, json.dumps(params), prefer_async=True)

        execution_id = webhook_execution_id(source.name, delivery.delivery_id)
        try:
            submission, created = self._executions.start_once(runner, prepare, execution_id, stamp)
        except (TemplateError, errors.ProblemError) as refused:
            if isinstance(refused, errors.ProblemError) and refused.status >= 500:
                raise
            code = refused.code if isinstance(refused, errors.ProblemError) else "WEBHOOK_PARAMS_UNRESOLVED"
            recorded = RecordedDelivery(source.name, delivery.delivery_id, delivery.event, "refused", code)
            logger.warning("webhook run refused", extra=recorded.view() | {"source": source.name})
            return self._recorded(recorded, stamp)
        logger.info(
            "webhook delivery accepted",
            extra={
                "source": source.name,
                "delivery_id": delivery.delivery_id,
                "event": delivery.event,
                "execution_id": execution_id,
                "redelivery": not created,
            },
        )
        answer = {**submission.body, "delivery_id": delivery.delivery_id, "event": delivery.event, "outcome": "started"}
        return Submission(202, answer, submission.headers)

    def verify(self, source: WebhookSource, headers: Mapping[str, str] | None, body: bytes) -> None:
        """Raise unless the delivery is signed by one of the source's secrets (and fresh, where signed)."""
        secrets = self._source_secrets(source)
        if source.kind == "github":
            verify_github(headers, body, secrets)
        elif source.kind == "stripe":
            verify_stripe(headers, body, secrets, self._clock(), self._tolerance_s)
        else:
            verify_standard(headers, body, secrets, self._clock(), self._tolerance_s)

    def _source_secrets(self, source: WebhookSource) -> Sequence[str]:
        try:
            configured = self._secrets().get(source.name)
        except Exception as exc:  # noqa: BLE001 - any failure is a 503; only its type is logged
            logger.error("webhook secrets unavailable", extra={"error": type(exc).__name__})
            raise errors.DependencyUnavailable(
                "Webhook secrets are unavailable.", headers={"Retry-After": "5"}
            ) from None
        found = [configured] if isinstance(configured, str) else configured
        secrets = [s for s in found or () if isinstance(s, str) and s]
        if not secrets:
            logger.error("webhook source has no secret", extra={"source": source.name})
            raise errors.DependencyUnavailable("The webhook source has no secret configured.")
        return secrets

    def _recorded(self, delivery: RecordedDelivery, stamp: AuditStamp) -> Submission:
        first = self._log.record(delivery, stamp)
        logger.info("webhook delivery recorded", extra=first.view() | {"source": first.source})
        return Submission(202, first.view())


def parse_delivery(source: WebhookSource, headers: Mapping[str, str] | None, body: bytes) -> Delivery:
    """The identity, event type and payload of a verified delivery (415, 400 when it lacks them)."""
    check_media_type(header(headers, "Content-Type"))
    try:
        payload = parse_json(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise errors.InvalidJson("The request body is not UTF-8.") from None
    if not isinstance(payload, dict):
        raise WebhookDeliveryInvalid("The delivery's body is not a JSON object.")
    action = None
    if source.kind == "github":
        delivery_id, event = header(headers, "X-GitHub-Delivery"), header(headers, "X-GitHub-Event")
        action = payload.get("action") if isinstance(payload.get("action"), str) else None
    elif source.kind == "stripe":
        delivery_id, event = payload.get("id"), payload.get("type")
    else:
        delivery_id, event = header(headers, "webhook-id"), payload.get("type")
    if not isinstance(delivery_id, str) or not _TOKEN.fullmatch(delivery_id):
        raise WebhookDeliveryInvalid("The delivery has no usable identity.")
    if not isinstance(event, str) or not _TOKEN.fullmatch(event):
        raise WebhookDeliveryInvalid("The delivery has no usable event type.")
    if action is not None and not _TOKEN.fullmatch(action):
        action = None
    return Delivery(source.name, delivery_id, event, action, payload)
