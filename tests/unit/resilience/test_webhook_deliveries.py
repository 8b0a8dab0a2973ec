"""Deliveries that started nothing are recorded once in the control table; the first record wins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3

from cmdgate.audit import AuditStamp
from cmdgate.webhooks.deliveries import DeliveryLog, RecordedDelivery

NOW = 1_764_590_000


def test_the_first_record_of_a_delivery_wins(session: boto3.session.Session, table_like: Callable[[str], Any]) -> None:
    table = table_like("ControlTable")
    client = session.client("dynamodb")
    log = DeliveryLog(client, table.name, ttl_s=86400, clock=lambda: NOW)
    first = RecordedDelivery("github", "d-1", "ping", "unmapped")
    assert log.record(first, AuditStamp("webhook:github", "req-1", "192.0.2.1", "webhook.accepted")) == first
    later = RecordedDelivery("github", "d-1", "ping", "refused", "FORBIDDEN")
    assert log.record(later, AuditStamp("webhook:github", "req-2", "192.0.2.2", "webhook.accepted")) == first
    item = table.get_item(Key={"pk": "webhook#github#d-1"})["Item"]
    assert (item["outcome"], item["request_id"], item["source_ip"]) == ("unmapped", "req-1", "192.0.2.1")
    assert int(item["expires_at"]) == NOW + 86400
    assert log.get("stripe", "d-1") is None
