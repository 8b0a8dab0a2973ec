"""Breaker records in the DynamoDB control table, shared by every Lambda instance.

One item per breaker, hash key `pk` = `breaker#<name>`:

    state         S  "closed" | "open"         (half-open = open and now >= opened_until)
    version       N  +1 on every transition     (every write is conditional on it)
    opened_until  N  epoch seconds
    probes        N  half-open permits taken in the current round
    c_<v>_<b>     N  calls in bucket b of version v          (atomic ADD)
    f_<v>_<b>     N  failures in bucket b of version v       (atomic ADD)
    expires_at    N  TTL: an idle breaker disappears, which reads as closed
    updated_at    N

Every method is ONE UpdateItem (or one GetItem for `load`), conditional on the
version the caller read; a failed condition returns the item as it is
(`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so losing a race costs no extra read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from cmdgate.breaker.store.base import BreakerRecord, BreakerStore, BucketKey, Counts, StoredState

KEY_PREFIX = "breaker#"
_BUCKET_ATTR = re.compile(r"^([cf])_(\d+)_(\d+)$")


class DynamoDBBreakerStore(BreakerStore):
    """Conditional writes and atomic counters on one item per breaker (low-level client)."""

    def __init__(self, client: Any, table_name: str, *, ttl_s: int = 7 * 86400) -> None:
        if not table_name:
            raise ValueError("DynamoDBBreakerStore needs a table name")
        self._client = client
        self._table = table_name
        self._ttl_s = ttl_s

    def load(self, name: str) -> BreakerRecord:
        """GetItem (strongly consistent)."""
        response = self._client.get_item(TableName=self._table, Key=self._key(name), ConsistentRead=True)
        return _decode(response.get("Item"))

    def add_outcomes(
        self, name: str, *, version: int, counts: Mapping[BucketKey, Counts], drop: Iterable[BucketKey], now: float
    ) -> tuple[bool, BreakerRecord]:
        """UpdateItem: ADD the counts, REMOVE dropped buckets, if `version` still holds."""
        expression = _Expression(now, self._ttl_s)
        expression.set_if_absent("state", {"S": "closed"})
        expression.set_if_absent("version", {"N": "0"})
        for (bucket_version, bucket), (calls, failures) in counts.items():
            if calls:
                expression.add(f"c_{bucket_version}_{bucket}", calls)
            if failures:
                expression.add(f"f_{bucket_version}_{bucket}", failures)
        expression.remove_buckets(k for k in drop if k not in counts)
        return self._update(name, expression, _version_condition(expression, version))

    def transition(
        self,
        name: str,
        *,
        version: int,
        state: StoredState,
        opened_until: float,
        drop: Iterable[BucketKey],
        now: float,
    ) -> tuple[bool, BreakerRecord]:
        """UpdateItem: SET state, version + 1, opened_until, probes = 0, if `version` still holds."""
        expression = _Expression(now, self._ttl_s)
        expression.set("state", {"S": state})
        expression.set("version", {"N": str(version + 1)})
        expression.set("opened_until", {"N": _number(opened_until)})
        expression.set("probes", {"N": "0"})
        expression.remove_buckets(drop)
        return self._update(name, expression, _version_condition(expression, version))

    def acquire_probe(self, name: str, *, version: int, now: float, max_probes: int) -> tuple[bool, BreakerRecord]:
        """UpdateItem: ADD probes 1, if at `version`, open, past `opened_until` and below `max_probes`."""
        expression = _Expression(now, self._ttl_s)
        expression.add("probes", 1)
        condition = " AND ".join(
            [
                _version_condition(expression, version),
                f"{expression.name('state')} = {expression.value({'S': 'open'})}",
                f"{expression.name('opened_until')} <= {expression.value({'N': _number(now)})}",
                f"(attribute_not_exists({expression.name('probes')}) OR "
                f"{expression.name('probes')} < {expression.value({'N': str(max_probes)})})",
            ]
        )
        return self._update(name, expression, condition)

    def _key(self, name: str) -> dict[str, Any]:
        return {"pk": {"S": KEY_PREFIX + name}}

    def _update(self, name: str, expression: _Expression, condition: str) -> tuple[bool, BreakerRecord]:
        from botocore.exceptions import ClientError

        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(name),
                UpdateExpression=expression.update_expression(),
                ConditionExpression=condition,
                ExpressionAttributeNames=expression.names,
                ExpressionAttributeValues=expression.values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False, _decode(error.response.get("Item"))
        return True, _decode(response.get("Attributes"))


class _Expression:
    """Builds one UpdateExpression with placeholders for every name and value."""

    def __init__(self, now: float, ttl_s: int) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, str]] = {}
        self._set: list[str] = []
        self._add: list[str] = []
        self._remove: list[str] = []
        self.set("updated_at", {"N": _number(now)})
        self.set("expires_at", {"N": str(int(now) + ttl_s)})

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for existing, value in self.names.items():
            if value == attribute:
                return existing
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: dict[str, str]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: dict[str, str]) -> None:
        self._set.append(f"{self.name(attribute)} = {self.value(value)}")

    def set_if_absent(self, attribute: str, value: dict[str, str]) -> None:
        placeholder = self.name(attribute)
        self._set.append(f"{placeholder} = if_not_exists({placeholder}, {self.value(value)})")

    def add(self, attribute: str, amount: int) -> None:
        self._add.append(f"{self.name(attribute)} {self.value({'N': str(amount)})}")

    def remove_buckets(self, keys: Iterable[BucketKey]) -> None:
        for bucket_version, bucket in keys:
            self._remove.append(self.name(f"c_{bucket_version}_{bucket}"))
            self._remove.append(self.name(f"f_{bucket_version}_{bucket}"))

    def update_expression(self) -> str:
        clauses = ["SET " + ", ".join(self._set)]
        if self._add:
            clauses.append("ADD " + ", ".join(self._add))
        if self._remove:
            clauses.append("REMOVE " + ", ".join(self._remove))
        return " ".join(clauses)


def _version_condition(expression: _Expression, version: int) -> str:
    placeholder = expression.name("version")
    equal = f"{placeholder} = {expression.value({'N': str(version)})}"
    # Version 0 is also what a missing item (never written, or expired by TTL) reads as.
    return f"(attribute_not_exists({placeholder}) OR {equal})" if version == 0 else equal


def _number(value: float) -> str:
    return f"{value:.3f}"


def _decode(item: Mapping[str, Any] | None) -> BreakerRecord:
    if not item:
        return BreakerRecord()
    buckets: dict[BucketKey, list[int]] = {}
    for attribute, value in item.items():
        match = _BUCKET_ATTR.match(attribute)
        if match is None:
            continue
        counts = buckets.setdefault((int(match.group(2)), int(match.group(3))), [0, 0])
        counts[0 if match.group(1) == "c" else 1] = int(value["N"])
    state = item.get("state", {}).get("S", "closed")
    return BreakerRecord(
        state="open" if state == "open" else "closed",
        version=int(item.get("version", {}).get("N", "0")),
        opened_until=float(item.get("opened_until", {}).get("N", "0")),
        probes=int(item.get("probes", {}).get("N", "0")),
        buckets={key: (calls, failures) for key, (calls, failures) in buckets.items()},
    )
