"""Per-command outcome counters fed by `command.executed` events, counted exactly once."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

EVENT_MARKER_TTL_S = 14 * 86400  # longer than any SQS retention, so a redelivery is still recognised


class CommandStats:
    """Counters in the control table: `stats#<command>` with one attribute per status."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def record(self, event: dict[str, Any], now: int) -> bool:
        """Count one event; False if this event was already counted (SQS delivers at least once)."""
        command, status, execution_id = event.get("command"), event.get("status"), event.get("execution_id")
        if not all(isinstance(v, str) and v for v in (command, status, execution_id)):
            raise ValueError("command.executed event lacks command, status or execution_id")
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": {"S": f"event#{execution_id}#{status}"},
                                "expires_at": {"N": str(now + EVENT_MARKER_TTL_S)},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": f"stats#{command}"}},
                            "UpdateExpression": "ADD #status :one SET updated_at = :now",
                            "ExpressionAttributeNames": {"#status": str(status)},
                            "ExpressionAttributeValues": {":one": {"N": "1"}, ":now": {"N": str(now)}},
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons") or []
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
            raise
        return True

    def get(self, command: str) -> dict[str, int]:
        """Counts by status for one command."""
        item = self._client.get_item(TableName=self._table, Key={"pk": {"S": f"stats#{command}"}}, ConsistentRead=True)
        attributes = item.get("Item") or {}
        return {k: int(v["N"]) for k, v in attributes.items() if k not in ("pk", "updated_at") and "N" in v}


def parse_event(body: str) -> dict[str, Any]:
    """An event from a queue message body (a JSON object with a `type`)."""
    event = json.loads(body)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ValueError("not an event")
    return event
