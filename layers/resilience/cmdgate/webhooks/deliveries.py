"""Deliveries that started nothing (unmapped event types, refused runs), recorded once in the control table.

Item `webhook#<source>#<delivery id>`: event type, outcome (`unmapped` or `refused` with its code),
request id, source IP, received_at; it expires with the execution records. The first record of a
delivery wins (a conditional put), so a redelivery gets the first answer again. Deliveries that
started a run need no item of their own: their execution record (whose id derives from the delivery)
is the record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cmdgate.audit.stamp import AuditStamp
from cmdgate.executions.model import utc_now_iso


@dataclass(frozen=True)
class RecordedDelivery:
    """What was recorded of a delivery that started nothing."""

    source: str
    delivery_id: str
    event: str
    outcome: str  # unmapped | refused
    code: str | None = None

    def view(self) -> dict[str, Any]:
        """The webhook route's answer body."""
        body: dict[str, Any] = {"delivery_id": self.delivery_id, "event": self.event, "outcome": self.outcome}
        if self.code is not None:
            body["code"] = self.code
        return body


class DeliveryLog:
    """Records of deliveries that started nothing, first one wins."""

    def __init__(self, client: Any, table_name: str, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self._ttl_s = ttl_s
        self._clock = clock

    def record(self, delivery: RecordedDelivery, stamp: AuditStamp) -> RecordedDelivery:
        """Record `delivery` unless this delivery id was recorded before; returns the first record.

        The record is also the delivery's audit entry (`webhook.accepted`, by the source's principal).
        """
        pk = _pk(delivery.source, delivery.delivery_id)
        details = {"event": delivery.event, "outcome": delivery.outcome, "code": delivery.code}
        audit = {
            **stamp.fields(pk, "webhook.accepted"),
            "target": f"webhook:{delivery.source}:{delivery.delivery_id}",
            "details_json": json.dumps({k: v for k, v in details.items() if v}, separators=(",", ":"), sort_keys=True),
        }
        item: dict[str, Any] = {
            "pk": {"S": pk},
            "event": {"S": delivery.event},
            "outcome": {"S": delivery.outcome},
            "received_at": {"S": utc_now_iso()},
            "expires_at": {"N": str(int(self._clock()) + self._ttl_s)},
        }
        item.update({name: {"S": value} for name, value in {"code": delivery.code, **audit}.items() if value})
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return self.get(delivery.source, delivery.delivery_id) or delivery
        return delivery

    def get(self, source: str, delivery_id: str) -> RecordedDelivery | None:
        """The record of a delivery, or None."""
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": _pk(source, delivery_id)}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        code = item.get("code", {}).get("S")
        return RecordedDelivery(source, delivery_id, item["event"]["S"], item["outcome"]["S"], code)


def _pk(source: str, delivery_id: str) -> str:
    return f"webhook#{source}#{delivery_id}"
