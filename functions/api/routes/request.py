"""What every router reads from the current request: the caller and the time left."""

from __future__ import annotations

import os
import time

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import errors
from cmdgate.audit import AuditStamp, stamp_from_event
from cmdgate.auth import Principal
from cmdgate.ratelimit.requests import RequestRateLimiter


def principal(router: APIGatewayRouter) -> Principal:
    """The authenticated caller (401 if the authorizer passed none)."""
    found = Principal.from_authorizer_context(router.current_event.request_context.authorizer.raw_event)
    if found is None:
        raise errors.Unauthorized("No authenticated principal.")
    return found


def audit_stamp(router: APIGatewayRouter, action: str = "", idempotency_key: str | None = None) -> AuditStamp:
    """This request as the audit trail records it: the caller, the request id and the source address."""
    return stamp_from_event(
        router.current_event.raw_event, principal(router).principal_id, action=action, idempotency_key=idempotency_key
    )


def remaining_s(router: APIGatewayRouter) -> float:
    """Seconds left in this invocation (caps lock leases)."""
    return float(router.lambda_context.get_remaining_time_in_millis()) / 1000


_waited_s = [0.0]  # one request at a time per environment


def add_waited(seconds: float) -> None:
    """Count time this request spent waiting on purpose (a long poll): not the handler's own latency."""
    _waited_s[0] += max(0.0, seconds)


def take_waited() -> float:
    """The waited seconds of the request just answered (and reset for the next)."""
    waited, _waited_s[0] = _waited_s[0], 0.0
    return waited


def record_refusal(limiter: RequestRateLimiter, caller: Principal, status: int) -> None:
    """A request the rate limiter refused: recorded in the caller's outcome window and counted (EMF)."""
    limiter.record(caller, status)
    Metrics().add_metric(name="RateLimitRefused", unit=MetricUnit.Count, value=1)


def report_handler_latency(started: float, context: LambdaContext, route: str | None = None) -> float:
    """Emit `HandlerLatency` (EMF, ms): the request's time since `started` without its wait (a long poll).

    The canary's p95 alarm watches it instead of Lambda's Duration, which would count `?wait=` as slowness;
    it carries the executed version, so the alarm sees the new version only. `RouteLatency` is the
    same figure per route (`METHOD /resource`), for the dashboard's percentiles.
    """
    own_ms = round(max(0.0, (time.monotonic() - started - take_waited()) * 1000), 1)
    # The alarm names exactly these two dimensions (template.yaml ApiCanaryDurationAlarm).
    dimensions = {
        "ExecutedVersion": str(getattr(context, "function_version", "") or "$LATEST"),
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME", "cmdgate"),
    }
    with single_metric(
        name="HandlerLatency", unit=MetricUnit.Milliseconds, value=own_ms, default_dimensions=dimensions
    ):
        pass
    if route is not None:
        with single_metric(
            name="RouteLatency",
            unit=MetricUnit.Milliseconds,
            value=own_ms,
            default_dimensions={"route": route, "service": dimensions["service"]},
        ):
            pass
    return own_ms
