"""Execution records in DynamoDB; every status change is a conditional write."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from cmdgate.aws_errors import is_condition_failure
from cmdgate.executions.model import AttemptError, Execution, ExecutionError, Status, utc_now_iso

QUEUE_UNAVAILABLE = "QUEUE_UNAVAILABLE"  # an async execution whose message could not be sent


class ExecutionStore:
    """Reads and moves execution records (hash key `execution_id`)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, execution: Execution) -> None:
        """Insert a new record; an id is never reused."""
        self._table.put_item(Item=execution.to_item(), ConditionExpression="attribute_not_exists(execution_id)")

    def get(self, execution_id: str) -> Execution | None:
        """The record, or None."""
        item = self._table.get_item(Key={"execution_id": execution_id}, ConsistentRead=True).get("Item")
        return Execution.from_item(item) if item else None

    def begin_attempt(self, execution_id: str, lease_s: float, now: float, holder: str = "") -> Execution | None:
        """Claim the next attempt: from `queued`, or from `running` whose attempt lease ran out
        (its worker died). None if the record is terminal, absent, or another attempt holds it.

        `holder` names the worker environment taking the lease (its log stream), for whoever looks into it."""
        try:
            response = self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression=(
                    "SET #s = :running, started_at = if_not_exists(started_at, :iso), lease_until = :lease, "
                    "lease_holder = :holder ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_exists(execution_id) AND "
                    "(#s = :queued OR (#s = :running AND (attribute_not_exists(lease_until) OR lease_until < :now)))"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":running": "running",
                    ":queued": "queued",
                    ":iso": utc_now_iso(),
                    ":now": int(now),
                    ":lease": int(now + lease_s) + 1,
                    ":holder": holder or "-",
                    ":one": 1,
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return Execution.from_item(response["Attributes"])

    def renew_lease(self, execution_id: str, attempt: int, lease_until: float) -> bool:
        """Extend attempt `attempt`'s lease (its heartbeat); False once the attempt no longer owns the record."""
        try:
            self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET lease_until = :lease",
                ConditionExpression="#s = :running AND attempts = :attempt",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":lease": int(lease_until) + 1, ":running": "running", ":attempt": attempt},
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def finish(
        self,
        execution_id: str,
        attempt: int,
        status: Status,
        *,
        result: Any = None,
        error: ExecutionError | None = None,
        next_attempt_at: int | None = None,
    ) -> bool:
        """Record the outcome of attempt `attempt`; False if that attempt no longer owns the record
        (it finished already, or a later attempt took over after its lease ran out).

        An error is also appended to the record's `attempt_errors`; `next_attempt_at` says when a
        retried (`queued`) execution's message is due.
        """
        names = {"#s": "status"}
        values: dict[str, Any] = {":status": status, ":running": "running", ":attempt": attempt}
        sets = ["#s = :status"]
        if next_attempt_at is not None:
            sets.append("next_attempt_at = :next")
            values[":next"] = next_attempt_at
        # A finished run needs its sealed secrets no more; a dead-lettered one keeps them for a redrive.
        removes = ["lease_until", *(["secrets_json"] if status in ("succeeded", "failed", "cancelled") else [])]
        if status in ("succeeded", "failed", "dead_lettered", "cancelled"):
            sets.append("finished_at = :iso")
            values[":iso"] = utc_now_iso()
        if status == "succeeded":
            sets.append("result_json = :result")
            values[":result"] = json.dumps(result, separators=(",", ":"))
        if error is not None:
            sets.append("#e = :error")
            names["#e"] = "error"
            values[":error"] = error.model_dump()
            sets.append("attempt_errors = list_append(if_not_exists(attempt_errors, :none), :attempt_error)")
            values[":none"] = []
            values[":attempt_error"] = [
                AttemptError(attempt=attempt, code=error.code, detail=error.detail, at=utc_now_iso()).model_dump()
            ]
        try:
            self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
                ConditionExpression="#s = :running AND attempts = :attempt",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def cancel(self, execution_id: str) -> Execution | None:
        """Cancel: a `queued` execution becomes `cancelled` (it never runs), a `running` one is marked
        `cancel_requested` (its command sees it). The record as it is afterwards; None if absent."""
        moves = (
            ("SET #s = :cancelled, finished_at = :iso, cancel_requested = :yes REMOVE secrets_json", ":queued"),
            ("SET cancel_requested = :yes", ":running"),
        )
        for update, condition in moves:
            values: dict[str, Any] = {":yes": True, condition: condition[1:]}
            if ":cancelled" in update:
                values.update({":cancelled": "cancelled", ":iso": utc_now_iso()})
            try:
                response = self._table.update_item(
                    Key={"execution_id": execution_id},
                    UpdateExpression=update,
                    ConditionExpression=f"#s = {condition}",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )
            except ClientError as error:
                if is_condition_failure(error):
                    continue
                raise
            return Execution.from_item(response["Attributes"])
        return self.get(execution_id)

    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel was asked for (one strongly consistent read of one attribute)."""
        item = self._table.get_item(
            Key={"execution_id": execution_id}, ConsistentRead=True, ProjectionExpression="cancel_requested"
        ).get("Item")
        return bool(item and item.get("cancel_requested"))

    def dead_letters(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Execution], dict[str, Any] | None]:
        """Dead-lettered executions, oldest first (GSI `by_status`), and where the next page starts."""
        kwargs: dict[str, Any] = {
            "IndexName": "by_status",
            "KeyConditionExpression": "#s = :dead",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":dead": "dead_lettered"},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self._table.query(**kwargs)
        return [Execution.from_item(item) for item in response.get("Items", [])], response.get("LastEvaluatedKey")

    def redrive(self, execution_id: str) -> Execution | None:
        """Move a dead-lettered execution back to `queued`; None if it is not dead-lettered (any more).

        The condition makes two racing redrives give one new attempt, not two.
        """
        try:
            response = self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET #s = :queued REMOVE lease_until, finished_at",
                ConditionExpression="#s = :dead",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":queued": "queued", ":dead": "dead_lettered"},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return Execution.from_item(response["Attributes"])

    def requeue_unqueued(self, execution_id: str) -> Execution | None:
        """Move an async execution whose message could never be sent (`failed`, QUEUE_UNAVAILABLE) back to
        `queued`, for a retry of the request that made it; None if it is not in that state (any more)."""
        try:
            response = self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET #s = :queued REMOVE lease_until, finished_at, #e",
                ConditionExpression="#s = :failed AND #e.code = :unqueued",
                ExpressionAttributeNames={"#s": "status", "#e": "error"},
                ExpressionAttributeValues={":queued": "queued", ":failed": "failed", ":unqueued": QUEUE_UNAVAILABLE},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return Execution.from_item(response["Attributes"])

    def undo_redrive(self, execution_id: str) -> None:
        """Put a redriven execution back to `dead_lettered` when its message could not be sent."""
        try:
            self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET #s = :dead",
                ConditionExpression="#s = :queued",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":queued": "queued", ":dead": "dead_lettered"},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
