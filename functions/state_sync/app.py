"""State sync: a message names a written key; its gist, and other dirty gists of its namespace, are written
(cmdgate.state.sync). SQS FIFO, one group per key; reserved concurrency 1 keeps gist writes serial."""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import tracing
from cmdgate.state.sync import SyncDeferred, parse_sync_message
from cmdgate.wiring import services

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
# FIFO with one group per key: a deferred key holds back its own group only.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
MAX_DEFER_S = 300


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    try:
        outcome = services().gist_sync.sync(parse_sync_message(record.body))
    except SyncDeferred as deferred:
        # The message comes back when the key's gist is due, not after the whole visibility timeout.
        wait_s = min(MAX_DEFER_S, max(1, math.ceil(deferred.wait_s)))
        services().clients.client("sqs").change_message_visibility(
            QueueUrl=services().settings.state_sync_queue_url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=wait_s,
        )
        metrics.add_metric(name="GistSyncsDeferred", unit="Count", value=1)
        raise
    except Exception as failure:
        # The message comes back after the visibility timeout; say why (never the value or the token).
        logger.warning(
            "gist sync failed; the message returns",
            extra={"message_id": record.message_id, "error": type(failure).__name__, "detail": str(failure)[:300]},
        )
        raise
    if outcome.gist_writes:
        metrics.add_metric(name="GistWrites", unit="Count", value=outcome.gist_writes)
        metrics.add_metric(name="GistFilesWritten", unit="Count", value=outcome.files_written)
    if outcome.lag_s is not None:
        metrics.add_metric(name="GistSyncLag", unit="Seconds", value=round(outcome.lag_s, 3))
    if outcome.budget_left is not None:
        metrics.add_metric(name="GistWriteBudgetLeft", unit="Count", value=outcome.budget_left)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    services().gist_sync.bind_invocation(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
