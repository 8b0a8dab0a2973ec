"""The healer's moves of execution records; each one a conditional write, so two passes never both act.

Kept apart from ExecutionStore (the api function's and the worker's moves): the healer reads raw
items, so fields other parts add to the record (`retry_safe`, `next_attempt_at`) reach it without
this module knowing the model that wrote them.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cmdgate.aws_errors import is_condition_failure
from cmdgate.executions.model import ExecutionError, utc_now_iso


class ExecutionRepairs:
    """Queries by status and the healer's conditional moves on the executions table (a boto3 Table)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, execution_id: str) -> dict[str, Any] | None:
        """The raw record, or None."""
        item: dict[str, Any] | None = self._table.get_item(Key={"execution_id": execution_id}, ConsistentRead=True).get(
            "Item"
        )
        return item

    def with_status(
        self, status: str, created_before: str, limit: int, *, lease_before: int | None = None
    ) -> list[dict[str, Any]]:
        """Up to `limit` records in `status` created before the ISO timestamp, oldest first (GSI by_status);
        with `lease_before`, only those whose attempt lease ended before it (live ones never fill a batch)."""
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while len(items) < limit:
            kwargs: dict[str, Any] = {
                "IndexName": "by_status",
                "KeyConditionExpression": "#s = :s AND created_at < :before",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": status, ":before": created_before},
                "Limit": limit - len(items),
            }
            if lease_before is not None:
                kwargs["FilterExpression"] = "lease_until < :lease"
                kwargs["ExpressionAttributeValues"][":lease"] = lease_before
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._table.query(**kwargs)
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return items

    def redrive(self, execution_id: str, max_redrives: int, pass_id: str, now: int) -> dict[str, Any] | None:
        """A dead-lettered (or orphaned queued) execution back to `queued`, counting the redrive on the record.

        None when it is in another status or was redriven `max_redrives` times already.
        """
        try:
            response = self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET #s = :queued, healer_pass = :pass, healer_resent_at = :now "
                "ADD healer_redrives :one "
                "REMOVE lease_until, finished_at",
                ConditionExpression="(#s = :dead OR #s = :queued) AND "
                "(attribute_not_exists(healer_redrives) OR healer_redrives < :max)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":queued": "queued",
                    ":dead": "dead_lettered",
                    ":one": 1,
                    ":max": max_redrives,
                    ":pass": pass_id,
                    ":now": now,
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        attributes: dict[str, Any] = response["Attributes"]
        return attributes

    def undo_redrive(self, execution_id: str) -> None:
        """Back to `dead_lettered` when the redriven message could not be sent (the redrive stays counted)."""
        try:
            self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression="SET #s = :dead, finished_at = :iso",
                ConditionExpression="#s = :queued",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":queued": "queued", ":dead": "dead_lettered", ":iso": utc_now_iso()},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise

    def dead_letter(self, execution_id: str, error: ExecutionError) -> bool:
        """A `queued` execution whose message is gone for good ends `dead_lettered` with `error`."""
        return self._move(
            execution_id,
            "SET #s = :dead, finished_at = :iso, #e = if_not_exists(#e, :error)",
            "#s = :queued",
            {":queued": "queued", ":dead": "dead_lettered", ":iso": utc_now_iso(), ":error": error.model_dump()},
        )

    def requeue_stuck(
        self, execution_id: str, attempts: int, lease_until: int, error: ExecutionError, now: int
    ) -> bool:
        """A `running` execution whose worker is gone back to `queued` (only if nothing moved it meanwhile)."""
        return self._move(
            execution_id,
            "SET #s = :queued, #e = :error, healer_resent_at = :now ADD healer_requeues :one REMOVE lease_until",
            "#s = :running AND attempts = :attempts AND lease_until = :lease",
            {
                ":queued": "queued",
                ":running": "running",
                ":attempts": attempts,
                ":lease": lease_until,
                ":error": error.model_dump(),
                ":one": 1,
                ":now": now,
            },
        )

    def fail_stuck(self, execution_id: str, attempts: int, lease_until: int, error: ExecutionError) -> bool:
        """A `running` execution whose worker is gone, and that may not run again, ends `failed`."""
        return self._move(
            execution_id,
            "SET #s = :failed, finished_at = :iso, #e = :error REMOVE lease_until, secrets_json",
            "#s = :running AND attempts = :attempts AND lease_until = :lease",
            {
                ":failed": "failed",
                ":running": "running",
                ":attempts": attempts,
                ":lease": lease_until,
                ":iso": utc_now_iso(),
                ":error": error.model_dump(),
            },
        )

    def mark_resent(self, execution_id: str, now: int, resent_before: int) -> bool:
        """Claim the re-send of a `queued` execution's message: at most once per `resent_before` horizon."""
        return self._move(
            execution_id,
            "SET healer_resent_at = :now ADD healer_resends :one",
            "#s = :queued AND (attribute_not_exists(healer_resent_at) OR healer_resent_at < :before)",
            {":queued": "queued", ":now": now, ":before": resent_before, ":one": 1},
        )

    def _move(self, execution_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        names = {"#s": "status"}
        if "#e" in update:
            names["#e"] = "error"
        try:
            self._table.update_item(
                Key={"execution_id": execution_id},
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(execution_id) AND {condition}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True
