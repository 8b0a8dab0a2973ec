"""Lock records in the DynamoDB control table (hash key `pk`, TTL attribute `expires_at`).

One item per lock, `pk = "lock#<name>"`:

    owner        S  the holder of the current (or last) lease
    fence        N  fencing token: +1 on every acquisition, never reset while the item exists
    lease_until  N  epoch seconds (microsecond precision); 0 once released
    expires_at   N  TTL: `expire_item_after_s` past the lease end (or the release)

Every write is ONE UpdateItem with a condition; on a failed condition the item
comes back with the error (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so a
refused acquisition learns the holder and its lease end without an extra read.
Expiry is decided by the condition on `lease_until`, never by the item's
disappearance: TTL deletion happens up to days late.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cmdgate.locks.store.base import LockRecord, LockStore, lock_key

NAMES = {"#owner": "owner", "#fence": "fence", "#until": "lease_until", "#exp": "expires_at"}

ACQUIRE_UPDATE = "SET #owner = :owner, #until = :until, #exp = :exp, #fence = if_not_exists(#fence, :floor) + :one"
ACQUIRE_CONDITION = "attribute_not_exists(#until) OR #until <= :now"
EXTEND_UPDATE = "SET #until = :until, #exp = :exp"
EXTEND_CONDITION = "#owner = :owner AND #fence = :fence AND #until > :now"
RELEASE_UPDATE = "SET #until = :zero, #exp = :exp"
RELEASE_CONDITION = "#owner = :owner AND #fence = :fence"


class DynamoDBLockStore(LockStore):
    """Conditional UpdateItems on one control-table item per lock (low-level client)."""

    def __init__(self, client: Any, table_name: str) -> None:
        if not table_name:
            raise ValueError("DynamoDBLockStore needs a table name")
        self._client = client
        self._table = table_name

    def load(self, name: str) -> LockRecord | None:
        """GetItem (strongly consistent)."""
        response = self._client.get_item(TableName=self._table, Key=_key(name), ConsistentRead=True)
        return _decode(name, response.get("Item"))

    def acquire(
        self, name: str, owner: str, *, now: float, lease_until: float, expires_at: int, fence_floor: int
    ) -> tuple[bool, LockRecord | None]:
        """UpdateItem: take the lease and ADD one to the fence, IF no lease is in force at `now`."""
        values = {
            ":owner": {"S": owner},
            ":until": _n(lease_until),
            ":exp": _n(expires_at),
            ":floor": _n(fence_floor),
            ":one": _n(1),
            ":now": _n(now),
        }
        return self._update(name, ACQUIRE_UPDATE, ACQUIRE_CONDITION, values)

    def extend(
        self, name: str, owner: str, fence: int, *, now: float, lease_until: float, expires_at: int
    ) -> tuple[bool, LockRecord | None]:
        """UpdateItem: move the lease end, IF owner and fence match and the lease is in force at `now`."""
        values = {
            ":owner": {"S": owner},
            ":fence": _n(fence),
            ":until": _n(lease_until),
            ":exp": _n(expires_at),
            ":now": _n(now),
        }
        return self._update(name, EXTEND_UPDATE, EXTEND_CONDITION, values)

    def release(self, name: str, owner: str, fence: int, *, expires_at: int) -> tuple[bool, LockRecord | None]:
        """UpdateItem: end the lease (keep owner and fence), IF owner and fence match."""
        values = {":owner": {"S": owner}, ":fence": _n(fence), ":zero": _n(0), ":exp": _n(expires_at)}
        return self._update(name, RELEASE_UPDATE, RELEASE_CONDITION, values)

    def _update(
        self, name: str, update: str, condition: str, values: dict[str, dict[str, str]]
    ) -> tuple[bool, LockRecord | None]:
        from botocore.exceptions import ClientError

        used = update + " " + condition
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(name),
                UpdateExpression=update,
                ConditionExpression=condition,
                # DynamoDB refuses placeholders an expression does not use.
                ExpressionAttributeNames={k: v for k, v in NAMES.items() if k in used},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            # No "Item" in the error means there was no item at all.
            return False, _decode(name, error.response.get("Item"))
        return True, _decode(name, response.get("Attributes"))


def _key(name: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": lock_key(name)}}


def _n(value: float) -> dict[str, str]:
    # Integers stay exact; times keep microseconds.
    return {"N": str(value) if isinstance(value, int) else f"{value:.6f}"}


def _decode(name: str, item: Mapping[str, Any] | None) -> LockRecord | None:
    if not item:
        return None
    owner = item.get("owner", {}).get("S")
    return LockRecord(
        name=name,
        owner=owner,
        fence=int(item.get("fence", {}).get("N", "0")),
        lease_until=float(item.get("lease_until", {}).get("N", "0")),
        expires_at=int(float(item.get("expires_at", {}).get("N", "0"))),
    )
