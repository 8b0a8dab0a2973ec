"""The SQS hand-off of async executions and the `command.executed` events."""

from __future__ import annotations

import json
from typing import Any


class MessageQueue:
    """A JSON-message producer on one SQS queue."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def send(self, message: dict[str, Any], delay_s: int = 0) -> str:
        """Send one message (hidden for `delay_s`, at most 900 s); returns its MessageId."""
        extra = {"DelaySeconds": max(0, min(MAX_DELAY_S, delay_s))} if delay_s > 0 else {}
        response = self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(message), **extra)
        return str(response["MessageId"])

    def change_visibility(self, receipt_handle: str, visibility_s: int) -> None:
        """Make a received message visible again in `visibility_s` seconds (0: at once)."""
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_S, visibility_s)),
        )


MAX_DELAY_S = 900  # SQS DelaySeconds limit
MAX_VISIBILITY_S = 12 * 3600  # SQS visibility timeout limit


class PoisonMessage(Exception):
    """A message no retry can fix (unparseable, or naming no execution): it goes to the DLQ."""


def parse_execution_message(body: str) -> str:
    """The execution id carried by an executions-queue message."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise PoisonMessage("message body is not JSON") from exc
    execution_id = message.get("execution_id") if isinstance(message, dict) else None
    if not isinstance(execution_id, str) or not execution_id:
        raise PoisonMessage("message has no execution_id")
    return execution_id


def attempt_limit(body: str) -> int | None:
    """The attempt count after which a redriven execution is dead-lettered again (None: SQS decides)."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    limit = message.get("attempt_limit") if isinstance(message, dict) else None
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
