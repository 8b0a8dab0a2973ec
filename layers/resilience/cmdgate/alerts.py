"""On-call alerts on the SNS topic: the affected id, a one-line cause and a runbook, one per cause per window.

`Alerts.send(alert, subject_id, cause)` publishes at most one message per (alert, cause) and
window: the first sender in a window wins a conditional put of `alert#<alert>#<cause digest>#<window>`
in the control table (expiring two windows later); everyone else in the window is suppressed, so a
burst of a thousand dead letters with one cause pages once. Causes should therefore name the kind
of failure (`COMMAND_TRANSIENT_FAILURE: upstream timed out`), not the id, which travels in
`subject_id`. Each alert name has a runbook at `docs/runbooks/<alert>.md`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

logger = Logger(child=True)

# Every alert cmdgate sends, each with its runbook in docs/runbooks/ (a unit test checks they exist).
EXECUTION_DEAD_LETTERED = "execution_dead_lettered"
EXECUTION_STUCK = "execution_stuck"
POISON_MESSAGE = "poison_message"
DLQ_NOT_EMPTY = "dlq_not_empty"
BREAKER_OPEN = "breaker_open"
CALLBACK_ABANDONED = "callback_abandoned"
STATE_REPAIRED = "state_repaired"
ALERTS = (
    EXECUTION_DEAD_LETTERED,
    EXECUTION_STUCK,
    POISON_MESSAGE,
    DLQ_NOT_EMPTY,
    BREAKER_OPEN,
    CALLBACK_ABANDONED,
    STATE_REPAIRED,
)

RUNBOOK_PATH = "docs/runbooks/{alert}.md"
_ALERT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")
MAX_CAUSE_CHARS = 300
MAX_SUBJECT_ID_CHARS = 128


def one_line(text: str, limit: int) -> str:
    """`text` on one line of printable characters, at most `limit` of them."""
    flat = _UNPRINTABLE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class Alerts:
    """Deduplicated alerts: the control table decides who sends, SNS carries the message."""

    def __init__(
        self,
        sns: Any,
        topic_arn: str,
        dynamodb: Any,
        control_table: str,
        *,
        window_s: int = 900,
        runbook_base: str = "",
        stack_id: str = "cmdgate",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._dynamodb = dynamodb
        self._control_table = control_table
        self._window_s = max(1, int(window_s))
        self._runbook_base = runbook_base.rstrip("/")
        self._stack_id = stack_id
        self._clock = clock

    def runbook(self, alert: str) -> str:
        """The runbook link of `alert` (a repository path, under `runbook_base` when one is set)."""
        path = RUNBOOK_PATH.format(alert=alert)
        return f"{self._runbook_base}/{path}" if self._runbook_base else path

    def send(self, alert: str, subject_id: str, cause: str) -> bool:
        """Publish the alert unless one with this cause went out in this window; True if it was sent."""
        if not _ALERT_NAME.match(alert):
            raise ValueError(f"not an alert name: {alert!r}")
        if not self._topic_arn:
            logger.warning("no alerts topic; alert not sent", extra={"alert": alert, "subject_id": subject_id})
            return False
        subject_id = one_line(subject_id, MAX_SUBJECT_ID_CHARS) or "-"
        cause = one_line(cause, MAX_CAUSE_CHARS) or "unknown cause"
        now = self._clock()
        window = int(now // self._window_s)
        marker = {"pk": {"S": self._marker_key(alert, cause, window)}}
        try:
            # UpdateItem, not PutItem: every function that may alert already holds it on the control table.
            self._dynamodb.update_item(
                TableName=self._control_table,
                Key=marker,
                UpdateExpression="SET alert = :alert, subject_id = :subject, expires_at = :expires, #st = :sent",
                ConditionExpression="attribute_not_exists(pk) OR #st = :released",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={
                    ":alert": {"S": alert},
                    ":subject": {"S": subject_id},
                    ":expires": {"N": str((window + 2) * self._window_s)},
                    ":sent": {"S": "sent"},
                    ":released": {"S": "released"},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            logger.info("alert suppressed (already sent in this window)", extra={"alert": alert, "cause": cause})
            return False
        message = {
            "alert": alert,
            "subject_id": subject_id,
            "cause": cause,
            "runbook": self.runbook(alert),
            "stack": self._stack_id,
            "window_start": window * self._window_s,
            "window_s": self._window_s,
        }
        try:
            self._sns.publish(
                TopicArn=self._topic_arn,
                # SNS takes an ASCII subject of under 100 characters, without control characters.
                Subject=one_line(f"cmdgate {alert}: {subject_id}".encode("ascii", "replace").decode(), 99),
                Message=json.dumps(message),
                MessageAttributes={"alert": {"DataType": "String", "StringValue": alert}},
            )
        except Exception:
            # Give the window back: the next occurrence tries again instead of being suppressed unsent.
            self._dynamodb.update_item(
                TableName=self._control_table,
                Key=marker,
                UpdateExpression="SET #st = :released",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":released": {"S": "released"}},
            )
            raise
        logger.info("alert sent", extra={"alert": alert, "subject_id": subject_id, "cause": cause})
        return True

    @staticmethod
    def _marker_key(alert: str, cause: str, window: int) -> str:
        digest = hashlib.sha256(f"{alert}\n{cause}".encode()).hexdigest()[:32]
        return f"alert#{alert}#{digest}#{window}"
