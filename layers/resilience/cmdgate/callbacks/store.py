"""A callback's delivery state on its execution record; every move is a conditional write.

`callback_status`: absent (the run has not ended) -> `pending` (the end was handed to the callbacks
queue) -> `delivered` (a 2xx) | `abandoned` (attempts used up, or a destination refused for good).
An attempt claims `callback_lease_until` and counts itself in `callback_attempts`, so two copies of
one message never POST at once, and only the attempt holding the count records its outcome.
"""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import ClientError

from cmdgate.aws_errors import is_condition_failure
from cmdgate.executions.model import Execution, utc_now_iso


class CallbackStore:
    """Callback moves on the executions table (a Table resource)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, execution_id: str) -> Execution | None:
        """The execution record, or None."""
        item = self._table.get_item(Key={"execution_id": execution_id}, ConsistentRead=True).get("Item")
        return Execution.from_item(item) if item else None

    def mark_pending(self, execution_id: str) -> bool:
        """The run ended: its callback becomes `pending`; False if it already was handed over (or has none)."""
        try:
            self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET callback_status = :pending, callback_attempts = :zero",
                ConditionExpression="attribute_exists(callback_url) AND attribute_not_exists(callback_status)",
                ExpressionAttributeValues={":pending": "pending", ":zero": 0},
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def begin_attempt(self, execution_id: str, now: int, lease_s: int) -> Execution | None:
        """Claim the next delivery attempt; None when delivered, abandoned, or another attempt holds it."""
        try:
            response = self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET callback_lease_until = :lease ADD callback_attempts :one",
                ConditionExpression=(
                    "callback_status = :pending AND "
                    "(attribute_not_exists(callback_lease_until) OR callback_lease_until < :now)"
                ),
                ExpressionAttributeValues={":pending": "pending", ":now": now, ":lease": now + lease_s, ":one": 1},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return Execution.from_item(response["Attributes"])

    def end_attempt(
        self,
        execution_id: str,
        attempt: int,
        status: Literal["pending", "delivered", "abandoned"],
        last_error: str | None,
    ) -> bool:
        """Record attempt `attempt`'s outcome (pending: it failed and will be retried)."""
        sets = ["callback_status = :status"]
        values: dict[str, Any] = {":status": status, ":attempt": attempt}
        if status == "delivered":
            sets.append("callback_delivered_at = :iso")
            values[":iso"] = utc_now_iso()
        if last_error is not None:
            sets.append("callback_last_error = :error")
            values[":error"] = last_error
        try:
            self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE callback_lease_until",
                ConditionExpression="callback_attempts = :attempt",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True
