"""Event processor: command events (stats, mirror, follow-ups, callbacks' hand-over) and callback deliveries.

Two queues feed it: the events queue (`command.executed`, `state.changed`, `stats.mirror`) and the
callbacks queue (one message per callback, retried with backoff until a 2xx). Every step is safe
to repeat: SQS delivers at least once.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import tracing
from cmdgate.authz import SYSTEM_PREFIX
from cmdgate.stats import parse_event
from cmdgate.wiring import services

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def _from_callbacks_queue(record: SQSRecord) -> bool:
    url = services().settings.callbacks_queue_url
    return bool(url) and record.event_source_arn.rsplit(":", 1)[-1] == url.rstrip("/").rsplit("/", 1)[-1]


def _command_metrics(event: dict[str, Any]) -> None:
    """EMF: executions by command and status, and the command's duration."""
    command = str(event["command"])
    with single_metric(name="CommandExecutions", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="command", value=command)
        metric.add_dimension(name="status", value=str(event["status"]))
    duration = event.get("duration_ms")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        with single_metric(name="CommandDuration", unit=MetricUnit.Milliseconds, value=float(duration)) as metric:
            metric.add_dimension(name="command", value=command)


def command_executed(event: dict[str, Any]) -> None:
    now = int(time.time())
    svc = services()
    # Follow-ups and the callback first, each idempotent on its own: a redelivery after a crash
    # must still do them even though the stats below already counted the event.
    report = svc.follow_ups.on_executed(event)
    for queued in report.queued:
        logger.info("follow-up queued", extra={"parent": event.get("execution_id"), "execution_id": queued})
    if report.queued:
        metrics.add_metric(name="FollowUpsQueued", unit=MetricUnit.Count, value=len(report.queued))
    if report.stopped_at_depth:
        metrics.add_metric(name="FollowUpChainsStopped", unit=MetricUnit.Count, value=1)
    if event.get("callback") is True and svc.callbacks.hand_over(str(event["execution_id"])):
        metrics.add_metric(name="CallbacksQueued", unit=MetricUnit.Count, value=1)
    if svc.command_stats.record(event, now=now):
        _command_metrics(event)
    else:
        logger.info("duplicate event skipped", extra={"execution_id": event.get("execution_id")})
    # Also for a redelivery: a run that counted the event and then crashed before claiming the
    # mirror would otherwise leave the count unmirrored until the next event (one cheap call).
    svc.stats_mirror.request(now)


def deliver_callback(record: SQSRecord) -> None:
    """One callback delivery; a failed one raises RetryLater (its item fails, retried after the backoff)."""
    # httpx and the delivery code load here, not at init: most records are command events.
    from cmdgate.callbacks import RetryLater

    try:
        result = services().callbacks.deliver(record.body, record.receipt_handle)
    except RetryLater:
        metrics.add_metric(name="CallbacksRetried", unit=MetricUnit.Count, value=1)
        raise
    if result != "skipped":
        metrics.add_metric(name=f"Callbacks_{result}", unit=MetricUnit.Count, value=1)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    if _from_callbacks_queue(record):
        deliver_callback(record)
        return
    event = parse_event(record.body)
    kind = event["type"]
    if kind == "command.executed":
        command_executed(event)
    elif kind == "stats.mirror":
        services().stats_mirror.run(int(time.time()))
        metrics.add_metric(name="StatsMirrored", unit=MetricUnit.Count, value=1)
    elif kind == "state.changed":
        key = event.get("key")
        # cmdgate's own keys (the stats mirror) are not counted: counting them would feed the mirror.
        counted = isinstance(key, str) and not key.startswith(SYSTEM_PREFIX)
        if counted and services().command_stats.record_state_change(event, now=int(time.time())):
            metrics.add_metric(name="StateChanges", unit=MetricUnit.Count, value=1)
    else:
        logger.debug("event type without a handler", extra={"type": kind})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
