"""Buckets and outcome windows in the DynamoDB control table (hash key `pk`, TTL attribute `expires_at`).

One item per bucket group, `pk = "rl#<principal>#<scope>"`:

    tat         N  GCRA theoretical arrival time of the group's first bucket (the
                   caller's), integer microseconds since the epoch
    tat#<slot>  N  the same for each further bucket taken with it (a command's own limit)
    expires_at  N  TTL (epoch seconds): past every TAT plus a margin, when an absent
                   item and the stored one mean the same thing (full buckets)

One item per principal for adaptive tightening, `pk = "rla#<principal>"`:

    w0 n0 r0    N  sub-window number, requests, refused of the even sub-window
    w1 n1 r1    N  the same for the odd sub-window
    tightened_until  N  epoch seconds; absent when never tightened
    expires_at  N  TTL: once both sub-windows and any tightening are over

Every write is ONE UpdateItem with a condition; on a failed condition the item
comes back with the error (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so
losing costs no extra read. `#` and `%` in ids are %-escaped in keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cmdgate.ratelimit.store import base
from cmdgate.ratelimit.store.base import OutcomeSlot, OutcomeWindow, RateLimitStore, TatWrite


class DynamoDBRateLimitStore(RateLimitStore):
    """Conditional UpdateItems on the control table through the low-level client."""

    def __init__(self, client: Any, table_name: str) -> None:
        if not table_name:
            raise ValueError("DynamoDBRateLimitStore needs a table name")
        self._client = client
        self._table = table_name

    # -- token buckets ------------------------------------------------------

    def take(
        self, principal_id: str, scope: str, writes: Sequence[TatWrite], *, expires_at: int
    ) -> tuple[bool, dict[str, int | None]]:
        """ONE UpdateItem for every bucket of the group: each branch's SET, under all their conditions.

        busy: `SET t = t + :i IF t BETWEEN :now AND :max`; idle: `SET t = :now + :i IF t absent OR t < :now`.
        """
        sets, conditions = ["#exp = :exp"], []
        names, values = {"#exp": "expires_at"}, {":exp": _n(expires_at)}
        for n, write in enumerate(writes):
            names[f"#t{n}"] = write.attribute
            values[f":now{n}"] = _n(write.now_us)
            if write.busy:
                sets.append(f"#t{n} = #t{n} + :i{n}")
                conditions.append(f"(#t{n} BETWEEN :now{n} AND :max{n})")
                values[f":i{n}"], values[f":max{n}"] = _n(write.interval_us), _n(write.max_tat_us)
            else:
                sets.append(f"#t{n} = :tat{n}")
                conditions.append(f"(attribute_not_exists(#t{n}) OR #t{n} < :now{n})")
                values[f":tat{n}"] = _n(write.now_us + write.interval_us)
        applied, item = self._update(
            base.bucket_key(principal_id, scope), "SET " + ", ".join(sets), " AND ".join(conditions), names, values
        )
        return applied, {w.slot: _int(item, w.attribute) for w in writes}

    # -- outcome windows ----------------------------------------------------

    def load_outcomes(self, principal_id: str) -> OutcomeWindow:
        """GetItem (eventually consistent: a read a second stale only delays a tightening by one request)."""
        response = self._client.get_item(TableName=self._table, Key=_key(base.outcomes_key(principal_id)))
        return _decode_outcomes(response.get("Item"))

    def add_outcome(
        self, principal_id: str, *, window: int, reset: bool, requests: int, refused: int, expires_at: int
    ) -> tuple[bool, OutcomeWindow]:
        """UpdateItem on the slot of `window`: ADD to it, or (reset) start it over."""
        slot = window % 2
        names = {"#w": f"w{slot}", "#n": f"n{slot}", "#r": f"r{slot}", "#exp": "expires_at"}
        values = {":w": _n(window), ":requests": _n(requests), ":refused": _n(refused), ":exp": _n(expires_at)}
        if reset:
            update = "SET #w = :w, #n = :requests, #r = :refused, #exp = :exp"
            condition = "attribute_not_exists(#w) OR #w < :w"
        else:
            update = "ADD #n :requests, #r :refused SET #exp = :exp"
            condition = "#w >= :w"
        applied, item = self._update(base.outcomes_key(principal_id), update, condition, names, values, all_new=True)
        return applied, _decode_outcomes(item)

    def tighten(self, principal_id: str, *, until: float, now: float, expires_at: int) -> tuple[bool, OutcomeWindow]:
        """UpdateItem: SET tightened_until IF no tightening is in force at `now`."""
        applied, item = self._update(
            base.outcomes_key(principal_id),
            # Never shorten the item's life: another writer may have set a later expiry.
            "SET #until = :until, #exp = if_not_exists(#exp, :exp)",
            "attribute_not_exists(#until) OR #until <= :now",
            {"#until": "tightened_until", "#exp": "expires_at"},
            {":until": _n(until), ":exp": _n(expires_at), ":now": _n(now)},
            all_new=True,
        )
        return applied, _decode_outcomes(item)

    # -- plumbing -----------------------------------------------------------

    def _update(
        self,
        pk: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, dict[str, str]],
        *,
        all_new: bool = False,
    ) -> tuple[bool, Mapping[str, Any] | None]:
        from botocore.exceptions import ClientError

        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(pk),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW" if all_new else "UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            # No "Item" in the error means there was no item at all.
            return False, error.response.get("Item")
        return True, response.get("Attributes")


def _key(pk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": pk}}


def _n(value: float) -> dict[str, str]:
    # Integers stay exact; floats (tightened_until) keep millisecond precision.
    return {"N": str(value) if isinstance(value, int) else f"{value:.3f}"}


def _int(item: Mapping[str, Any] | None, attribute: str) -> int | None:
    if not item or attribute not in item:
        return None
    return int(item[attribute]["N"])


def _decode_outcomes(item: Mapping[str, Any] | None) -> OutcomeWindow:
    if not item:
        return OutcomeWindow()
    slots = tuple(OutcomeSlot(_int(item, f"w{i}"), _int(item, f"n{i}") or 0, _int(item, f"r{i}") or 0) for i in (0, 1))
    until = item.get("tightened_until", {}).get("N")
    return OutcomeWindow((slots[0], slots[1]), float(until) if until is not None else 0.0)
