"""Admin actions' own audit items, in the control table (`pk = audit#<audit_at>`), written once, never changed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from cmdgate.audit.stamp import AuditStamp

logger = Logger(child=True)


class AuditLog:
    """Appends the audit item of an admin action (the command and state paths write none: their records are it)."""

    def __init__(self, table: Any, retention_s: int, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._retention_s = retention_s
        self._clock = clock

    def record(self, stamp: AuditStamp, target: str, details: dict[str, Any]) -> bool:
        """Append `stamp.action` on `target` with `details` (ids and names only: the caller never passes a secret).

        The action has happened when this is called: a failed append is logged, not raised, so the
        caller still learns the outcome (a key it could not see again, a redrive it would repeat).
        """
        fields = stamp.fields(f"{target}#{stamp.action}#{stamp.request_id}")  # two actions of one request differ
        item = {
            "pk": f"audit#{fields['audit_at']}",
            **fields,
            "target": target,
            "details_json": json.dumps(details, separators=(",", ":"), sort_keys=True),
            "expires_at": int(self._clock()) + self._retention_s,
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except Exception:
            logger.exception("audit item not written", extra={"audit_action": stamp.action, "target": target})
            return False
        return True
