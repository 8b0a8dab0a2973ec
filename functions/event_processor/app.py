"""Event processor: counts `command.executed` events per command, exactly once; acknowledges other types."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate.stats import parse_event
from cmdgate.wiring import services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    event = parse_event(record.body)
    if event["type"] != "command.executed":
        # state.changed and future types have no consumer here yet: acknowledged, not dead-lettered.
        logger.debug("event type without a handler", extra={"type": event["type"]})
        return
    if services().command_stats.record(event, now=int(time.time())):
        metrics.add_metric(name=f"Executions_{event['status']}", unit="Count", value=1)
    else:
        logger.info("duplicate event skipped", extra={"execution_id": event.get("execution_id")})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
