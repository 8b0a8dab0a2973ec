"""Reading the trail: several sparse indexes merged in time order behind one cursor.

Every source (executions, state version log, admin items) has a `by_audit_day` index: hash
`audit_day` (`YYYY-MM-DD#<shard>`), range `audit_at`. A page walks the days from the cursor's
(or `since`), and for one day reads one query per source and shard. A stream that has more than
it returned bounds the merge: only entries up to the smallest such horizon are certain to be in
order, so the page stops there and the cursor (day, last `audit_at`) resumes after it. Filters
(`principal`, `action`) are applied by DynamoDB, so a page may be short but is never out of order.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cmdgate import errors
from cmdgate.audit.stamp import ACTIONS, AUDIT_INDEX, AUDIT_SHARDS, day_of, iso_ms
from cmdgate.pagination import InvalidCursor, decode_cursor, encode_cursor

DEFAULT_SINCE_S = 86400
MAX_DAYS_PER_PAGE = 7
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z#[\x21-\x7e]{1,400}")
_SINCE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})")
_PRINCIPAL = re.compile(r"[\x21-\x7e]{1,256}")
Entry = dict[str, Any]


@dataclass(frozen=True)
class AuditSource:
    """One table's audit index and how its items read as entries."""

    name: str
    table: Any  # a boto3 DynamoDB Table resource
    entry: Callable[[dict[str, Any]], Entry]


def _common(item: dict[str, Any]) -> Entry:
    return {
        "at": str(item["audit_at"]).split("#", 1)[0],
        "action": item.get("audit_action"),
        "principal": item.get("audit_principal"),
        "request_id": item.get("request_id"),
        "source_ip": item.get("source_ip"),
    }


def execution_entry(item: dict[str, Any]) -> Entry:
    """A command run (or a webhook's run): which command, which execution; never its params."""
    entry = {**_common(item), "execution_id": item.get("execution_id"), "command": item.get("command")}
    if item.get("idempotency_key") is not None:
        entry["idempotency_key"] = item["idempotency_key"]
    return entry


def version_entry(item: dict[str, Any]) -> Entry:
    """A state write, delete or restore: the key and the version it made; never the value."""
    pk, sk = str(item.get("pk", "")), str(item.get("sk", ""))
    return {**_common(item), "key": pk.removeprefix("key#"), "version": int(sk.removeprefix("v#") or 0)}


def admin_entry(item: dict[str, Any]) -> Entry:
    """An admin action: its target and the details recorded with it."""
    details = json.loads(item.get("details_json") or "{}")
    return {**_common(item), "target": item.get("target"), **details}


def parse_since(value: str | None, now: float) -> float:
    """`since` (RFC 3339) as epoch seconds; default (absent) one day ago; empty is no date-time."""
    if value is None:
        return now - DEFAULT_SINCE_S
    if not _SINCE.fullmatch(value):
        raise errors.BadRequest("since must be an RFC 3339 date-time, e.g. 2026-12-01T00:00:00Z.")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise errors.BadRequest("since must be an RFC 3339 date-time, e.g. 2026-12-01T00:00:00Z.") from None


class AuditTrail:
    """`GET /v1/admin/audit`: entries oldest first, filtered, paginated."""

    def __init__(self, sources: list[AuditSource], retention_s: int, clock: Callable[[], float] = time.time) -> None:
        self._sources = sources
        self._retention_s = retention_s
        self._clock = clock

    def page(
        self,
        *,
        since: float,
        limit: int,
        cursor: str | None = None,
        principal: str | None = None,
        action: str | None = None,
    ) -> tuple[list[Entry], str | None]:
        """One page of entries at or after `since` (never older than the retention) and the next cursor."""
        if principal is not None and not _PRINCIPAL.fullmatch(principal):
            raise errors.BadRequest("principal must be 1 to 256 printable ASCII characters.")
        if action is not None and action not in ACTIONS:
            raise errors.BadRequest(f"action must be one of {', '.join(ACTIONS)}.")
        now = self._clock()
        floor = max(since, now - self._retention_s)
        start = _decode(cursor)
        day, after = start if start else (day_of(floor), iso_ms(floor))
        after = max(after, iso_ms(floor))  # a cursor never reaches back beyond `since` or the retention
        today = day_of(now)
        entries: list[Entry] = []
        for _ in range(MAX_DAYS_PER_PAGE):
            if day > today:
                return entries, None
            found, horizon = self._day(day, after, limit - len(entries), principal, action)
            entries.extend(found)
            if horizon is not None:
                return entries, _encode(day, horizon)
            day, after = _next_day(day), ""
            if len(entries) >= limit:
                break
        return entries, None if day > today else _encode(day, after)

    def _day(
        self, day: str, after: str, want: int, principal: str | None, action: str | None
    ) -> tuple[list[Entry], str | None]:
        """Up to `want` entries of `day` after `after`, and where the day resumes (None: the day is done)."""
        found: list[tuple[str, Entry]] = []
        bound: str | None = None  # the smallest point up to which every stream has been read
        for source in self._sources:
            for shard in range(AUDIT_SHARDS):
                items, last = self._query(source, f"{day}#{shard}", after, want, principal, action)
                found.extend((str(item["audit_at"]), source.entry(item)) for item in items)
                if last is not None:
                    bound = last if bound is None else min(bound, last)
        found.sort(key=lambda pair: pair[0])
        certain = [pair for pair in found if bound is None or pair[0] <= bound]
        taken = certain[:want]
        if len(certain) > want:
            return [entry for _, entry in taken], taken[-1][0]
        return [entry for _, entry in taken], bound

    def _query(
        self, source: AuditSource, partition: str, after: str, limit: int, principal: str | None, action: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        names = {"#d": "audit_day"}
        values: dict[str, Any] = {":d": partition}
        condition = "#d = :d"
        if after:  # a key condition cannot compare with an empty string: "" is the start of the day
            names["#a"], values[":after"] = "audit_at", after
            condition += " AND #a > :after"
        filters = []
        if principal is not None:
            names["#p"], values[":p"] = "audit_principal", principal
            filters.append("#p = :p")
        if action is not None:
            names["#x"], values[":x"] = "audit_action", action
            filters.append("#x = :x")
        kwargs: dict[str, Any] = {
            "IndexName": AUDIT_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
        response = source.table.query(**kwargs)
        last = response.get("LastEvaluatedKey")
        return response.get("Items", []), (str(last["audit_at"]) if last else None)


def _next_day(day: str) -> str:
    return (datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1)).strftime("%Y-%m-%d")


def _encode(day: str, after: str) -> str | None:
    return encode_cursor({"day": day, "after": after})


def _decode(cursor: str | None) -> tuple[str, str] | None:
    raw = decode_cursor(cursor, frozenset({"day", "after"}))
    if raw is None:
        return None
    if not _DAY.fullmatch(raw["day"]) or not (raw["after"] == "" or _AT.fullmatch(raw["after"])):
        raise InvalidCursor("The cursor is not one this API issued.")
    return raw["day"], raw["after"]
