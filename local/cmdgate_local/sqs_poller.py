"""Lambda's SQS event source mapping, locally: batches in, `batchItemFailures` honoured.

Messages the function reports as failed (or all of them, when the invocation
itself fails) are left alone: they reappear after the visibility timeout, and
the queue's RedrivePolicy moves them to the DLQ after maxReceiveCount - as in AWS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cmdgate_local.lambda_runtime import InvokeResult
from cmdgate_local.template import REGION, SqsSource

log = logging.getLogger("cmdgate_local.sqs")

Invoker = Callable[[str, dict[str, Any]], InvokeResult]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v.get("DataType"),
                    }
                    for k, v in (m.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def messages_to_delete(messages: list[dict[str, Any]], result: InvokeResult, partial: bool) -> list[dict[str, Any]]:
    """Which messages the invocation consumed."""
    if result.function_error:
        return []
    if not partial:
        return messages
    try:
        answer = result.json()
    except ValueError:
        return []  # an answer that is not JSON fails the whole batch, as in AWS
    failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
    if failures is None:
        return messages
    if not isinstance(failures, list):
        return []  # a malformed response fails the whole batch, as in AWS
    failed_ids = set()
    batch_ids = {m["MessageId"] for m in messages}
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            return []  # an empty or unrelated identifier fails the whole batch, as in AWS
        failed_ids.add(identifier)
    return [m for m in messages if m["MessageId"] not in failed_ids]


class SqsPoller:
    """Pollers for one event source mapping (one thread per allowed concurrent batch)."""

    def __init__(
        self, source: SqsSource, queue_url: str, queue_arn: str, sqs: Any, invoke: Invoker, concurrency: int
    ) -> None:
        self._source = source
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._sqs = sqs
        self._invoke = invoke
        self._stop = threading.Event()
        self._enabled = threading.Event()  # cleared: paused (UpdateEventSourceMapping Enabled=false)
        self._enabled.set()
        self._threads = [
            threading.Thread(target=self._run, name=f"sqs-{source.function_id}-{i}", daemon=True)
            for i in range(max(1, concurrency))
        ]
        self.batches = 0
        self._busy = 0  # batches received and not yet handed back
        self._busy_lock = threading.Lock()

    def start(self) -> None:
        """Start polling."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop after the current poll."""
        self._stop.set()
        self._enabled.set()

    @property
    def function_id(self) -> str:
        """The function this mapping invokes."""
        return self._source.function_id

    @property
    def enabled(self) -> bool:
        """Whether the mapping polls (a paused one finishes the batches it holds, then waits)."""
        return self._enabled.is_set()

    def set_enabled(self, enabled: bool) -> None:
        """Pause or resume polling."""
        if enabled:
            self._enabled.set()
        else:
            self._enabled.clear()

    @property
    def busy(self) -> int:
        """Batches being invoked right now (a paused mapping is idle once this is 0)."""
        with self._busy_lock:
            return self._busy

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._enabled.wait(timeout=1.0):
                continue
            with self._busy_lock:  # a receive under way counts: it may still get messages to invoke
                self._busy += 1
            try:
                self.poll_once()
            except Exception:
                log.exception("poll of %s failed", self._source.queue_id)
                self._stop.wait(1.0)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def poll_once(self) -> int:
        """Receive one batch, invoke, delete what was consumed; returns the batch size."""
        messages = self._receive()
        if not messages:
            return 0
        self.batches += 1
        result = self._invoke(self._source.function_id, sqs_event(messages, self._queue_arn))
        done = messages_to_delete(messages, result, self._source.report_batch_item_failures)
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(messages)

    def _receive(self) -> list[dict[str, Any]]:
        wanted = min(self._source.batch_size, 10)
        messages: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        deadline = time.monotonic() + self._source.batching_window_s
        while messages and len(messages) < wanted and time.monotonic() < deadline and not self._stop.is_set():
            more = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=wanted - len(messages),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not more:
                break
            messages.extend(more)
        return messages
