"""Per-command statistics fed by `command.executed` events, each event counted exactly once.

`stats#<command>` in the control table holds atomic counters only (UpdateItem `ADD`), so any
number of event processors can fold events in at once without losing a count:

- one attribute per status (`succeeded`, `failed`, `dead_lettered`, ...) and `count`;
- `duration_ms_sum` (the mean is sum / count);
- a mergeable log-scale histogram of durations: `h_<i>` counts runs of at most 2**(i/4) ms
  (`h_0`: at most 1 ms), so buckets are 19 % wide and two histograms merge by adding buckets;
  p95 is read as the upper bound of the bucket holding the 95th percentile rank;
- `last_run_at` / `last_status` (the latest event to be folded in wins).

The event's marker (`event#<id>#<status>`) is written in the same transaction, so a redelivered
event changes nothing. `state.changed` events are counted the same way, per namespace
(`statestats#<ns>`: `changes`, `deletes`, `last_change_at`), once per key version.
`statsindex` lists the commands seen, for the state mirror (`system.command-stats`, written by
`StatsMirror` at most once per interval).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

EVENT_MARKER_TTL_S = 14 * 86400  # longer than any SQS retention, so a redelivery is still recognised
STATUSES = frozenset({"succeeded", "failed", "dead_lettered", "cancelled"})
FAILURES = ("failed", "dead_lettered")
MAX_BUCKET = 120  # 2**30 ms: longer runs share the last bucket
INDEX_PK = "statsindex"
MIRROR_PK = "mirror#command-stats"
MIRROR_KEY = "system.command-stats"


def bucket_of(duration_ms: float) -> int:
    """The histogram bucket of a duration: the smallest i with duration <= 2**(i/4) ms."""
    if not duration_ms > 1:
        return 0
    return min(MAX_BUCKET, math.ceil(math.log2(duration_ms) * 4 - 1e-9))


def bucket_upper_ms(index: int) -> float:
    """The largest duration bucket `index` holds."""
    return float(2 ** (index / 4))


def percentile_ms(histogram: dict[int, int], fraction: float) -> float | None:
    """The upper bound of the bucket holding rank `fraction` of the histogram (None when empty)."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = math.ceil(fraction * total)
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(bucket_upper_ms(index), 1)
    return round(bucket_upper_ms(max(histogram)), 1)  # pragma: no cover - rank <= total


class CommandStats:
    """Counters in the control table: `stats#<command>`, one transaction per event with its marker."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def record(self, event: dict[str, Any], now: int) -> bool:
        """Count one event; False if this event was already counted (SQS delivers at least once)."""
        command, status, execution_id = event.get("command"), event.get("status"), event.get("execution_id")
        if not all(isinstance(v, str) and v for v in (command, status, execution_id)):
            raise ValueError("command.executed event lacks command, status or execution_id")
        duration = event.get("duration_ms", 0)
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 <= duration < 1e12:
            duration = 0
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
                            "UpdateExpression": (
                                "ADD #status :one, #count :one, duration_ms_sum :ms, #bucket :one "
                                "SET updated_at = :now, last_run_at = :now, last_status = :status"
                            ),
                            "ExpressionAttributeNames": {
                                "#status": str(status),
                                "#count": "count",
                                "#bucket": f"h_{bucket_of(float(duration))}",
                            },
                            "ExpressionAttributeValues": {
                                ":one": {"N": "1"},
                                ":now": {"N": str(now)},
                                ":ms": {"N": repr(round(float(duration), 1))},
                                ":status": {"S": str(status)},
                            },
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": INDEX_PK}},
                            "UpdateExpression": "ADD commands :name",
                            "ExpressionAttributeValues": {":name": {"SS": [str(command)]}},
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

    def record_state_change(self, event: dict[str, Any], now: int) -> bool:
        """Count one `state.changed` event per namespace (`statestats#<ns>`), exactly once per key version."""
        from cmdgate.state.layout import namespace_of

        key, version = event.get("key"), event.get("version")
        if not isinstance(key, str) or not key or isinstance(version, bool) or not isinstance(version, int):
            raise ValueError("state.changed event lacks key or version")
        kind = "deletes" if event.get("deleted") is True else "changes"
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": {"S": f"event#state#{key}#{version}"},
                                "expires_at": {"N": str(now + EVENT_MARKER_TTL_S)},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": f"statestats#{namespace_of(key)}"}},
                            "UpdateExpression": "ADD #kind :one SET last_change_at = :now",
                            "ExpressionAttributeNames": {"#kind": kind},
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
        return {k: int(v["N"]) for k, v in attributes.items() if k in STATUSES and "N" in v}

    def summary(self, command: str) -> dict[str, Any] | None:
        """One command's statistics (None if it never ran)."""
        item = self._client.get_item(TableName=self._table, Key={"pk": {"S": f"stats#{command}"}}, ConsistentRead=True)
        return summarize(item["Item"]) if item.get("Item") else None

    def commands(self) -> list[str]:
        """Every command with statistics."""
        item = self._client.get_item(TableName=self._table, Key={"pk": {"S": INDEX_PK}}, ConsistentRead=True)
        return sorted((item.get("Item") or {}).get("commands", {}).get("SS", []))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every command's statistics, by name (BatchGetItem, 100 keys a call)."""
        names = self.commands()
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), 100):
            keys: list[dict[str, Any]] = [{"pk": {"S": f"stats#{n}"}} for n in names[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(5):  # unprocessed keys come back under throttling
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item["pk"]["S"].removeprefix("stats#")] = summarize(item)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return dict(sorted(found.items()))


def summarize(item: dict[str, Any]) -> dict[str, Any]:
    """The public statistics of a `stats#<command>` item (low-level attribute values)."""

    def number(name: str) -> float:
        value = item.get(name, {}).get("N")
        return float(value) if value is not None else 0.0

    by_status = {k: int(v["N"]) for k, v in item.items() if k in STATUSES and "N" in v}
    histogram = {int(k[2:]): int(v["N"]) for k, v in item.items() if k.startswith("h_") and "N" in v}
    count = int(number("count"))
    last = item.get("last_run_at", {}).get("N")
    return {
        "count": count,
        "successes": by_status.get("succeeded", 0),
        "failures": sum(by_status.get(s, 0) for s in FAILURES),
        "by_status": by_status,
        "last_run_at": _iso(int(last)) if last else None,
        "last_status": item.get("last_status", {}).get("S"),
        "mean_ms": round(number("duration_ms_sum") / count, 1) if count else None,
        "p95_ms": percentile_ms(histogram, 0.95),
    }


class StatsMirror:
    """Mirrors the statistics into state key `system.command-stats`, coalesced.

    The first event after a quiet spell claims the mirror (`mirror#command-stats`, conditional) and
    schedules one delayed `stats.mirror` message `interval_s` later; events meanwhile find the claim
    and do nothing. The delayed message releases the claim and writes the snapshot, so a burst costs
    one state write per interval and its last count is mirrored within one interval.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        stats: CommandStats,
        schedule: Callable[[int], None],
        write: Callable[[dict[str, Any]], None],
        interval_s: int = 10,
    ) -> None:
        self._client = client
        self._table = table_name
        self._stats = stats
        self._schedule = schedule
        self._write = write
        self._interval_s = interval_s
        self._quiet_until = 0  # epoch s: a claim is known to be pending until then

    def request(self, now: int) -> bool:
        """After a counted event: claim and schedule a mirror unless one is pending; True if scheduled.

        The claim's `due_at` is remembered (from this environment's own claim, or returned by a failed
        one), so until then the events of a burst cost no call at all.
        """
        if now < self._quiet_until:
            return False
        due = now + self._interval_s
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": MIRROR_PK}},
                UpdateExpression="SET pending_until = :until, due_at = :due",
                # A claim whose message was never sent lapses after a few intervals.
                ConditionExpression="attribute_not_exists(pending_until) OR pending_until < :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(now + 3 * self._interval_s + 1)},
                    ":due": {"N": str(due)},
                    ":now": {"N": str(now)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                held = (error.response.get("Item") or {}).get("due_at", {}).get("N")
                # Until its due time the claim's message cannot have run (it was sent with the interval as
                # its delay), so it will read this environment's later counts too. Past it, the late message
                # may run any moment: each event asks again, or a count made just after that run's read
                # would never be mirrored.
                self._quiet_until = int(held) if held and int(held) > now else 0
                return False
            raise
        try:
            self._schedule(self._interval_s)
        except Exception:
            # No message means nobody releases the claim: release it now, so that the event's
            # retry (or the next event) claims and schedules again instead of waiting for the lapse.
            with contextlib.suppress(ClientError):  # else the claim lapses after 3 intervals
                self._release()
            raise
        self._quiet_until = due
        return True

    def _release(self) -> None:
        self._client.update_item(
            TableName=self._table, Key={"pk": {"S": MIRROR_PK}}, UpdateExpression="REMOVE pending_until"
        )

    def run(self, now: int) -> dict[str, Any]:
        """The delayed message: release the claim, then write the snapshot."""
        self._release()
        value = {"updated_at": _iso(now), "commands": self._stats.snapshot()}
        self._write(value)
        return value


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def parse_event(body: str) -> dict[str, Any]:
    """An event from a queue message body (a JSON object with a `type`)."""
    event = json.loads(body)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ValueError("not an event")
    return event
