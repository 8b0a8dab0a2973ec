"""Worker: runs queued executions from SQS, reporting partial batch failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import tracing
from cmdgate.wiring import services

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    receive_count = int(record.attributes.approximate_receive_count or "1")
    logger.append_keys(message_id=record.message_id)
    remaining_s = (lambda: lambda_context.get_remaining_time_in_millis() / 1000) if lambda_context else None
    services().executions.process_message(
        record.body, receive_count, receipt_handle=record.receipt_handle, remaining_s=remaining_s
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
