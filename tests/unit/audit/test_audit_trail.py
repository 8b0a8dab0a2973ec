"""The audit trail over in-process moto: records that exist anyway, merged in time order behind a cursor."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cmdgate import errors
from cmdgate.audit import AuditLog, AuditSource, AuditStamp, AuditTrail, parse_since, stamp_from_event
from cmdgate.audit.stamp import AUDIT_SHARDS, shard_of
from cmdgate.audit.trail import admin_entry, execution_entry, version_entry
from cmdgate.executions.model import Execution
from cmdgate.executions.store import ExecutionStore
from cmdgate.state.model import digest_of
from cmdgate.state.store import StateStore

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DAY = 86400
RETENTION_S = 400 * DAY


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Parts:
    def __init__(self, table_like: Callable[[str], Any]) -> None:
        self.executions_table = table_like("ExecutionsTable")
        self.state_table = table_like("StateTable")
        self.control_table = table_like("ControlTable")
        self.clock = Clock()
        self.executions = ExecutionStore(self.executions_table)
        self.state = StateStore(
            boto3.client("dynamodb", region_name="us-east-1"),
            "unit-StateTable",
            retention_s=3600,
            audit_retention_s=RETENTION_S,
            clock=self.clock,
        )
        self.log = AuditLog(self.control_table, RETENTION_S, clock=self.clock)
        self.trail = AuditTrail(
            [
                AuditSource("executions", self.executions_table, execution_entry),
                AuditSource("state", self.state_table, version_entry),
                AuditSource("admin", self.control_table, admin_entry),
            ],
            RETENTION_S,
            clock=self.clock,
        )

    def run(self, stamp: AuditStamp, execution_id: str, command: str = "echo") -> None:
        self.executions.create(
            Execution(
                execution_id=execution_id,
                command=command,
                principal_id=stamp.principal_id,
                mode="sync",
                status="succeeded",
                params={"token": "[redacted]"},
                created_at="2027-01-15T08:00:00.000Z",
                audit=stamp.fields(execution_id, "command.run"),
            )
        )

    def write(self, stamp: AuditStamp, key: str, value: Any, action: str = "state.written") -> int:
        register = self.state.commit(
            key, self.state.register(key), json.dumps(value), digest_of(value), audit=stamp.with_action(action)
        )
        return register.version

    def everything(self, limit: int, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        entries: list[dict[str, Any]] = []
        cursor, pages = None, 0
        while True:
            page, cursor = self.trail.page(since=NOW - DAY, limit=limit, cursor=cursor, **filters)
            entries += page
            pages += 1
            if cursor is None:
                return entries, pages
            assert pages < 200


@pytest.fixture
def parts(table_like: Callable[[str], Any]) -> Parts:
    return Parts(table_like)


def stamp(principal: str, at: float, request: str, **kwargs: Any) -> AuditStamp:
    return AuditStamp(principal_id=principal, request_id=request, source_ip="203.0.113.7", at=at, **kwargs)


def test_actions_of_every_source_come_back_in_time_order_across_pages(parts: Parts) -> None:
    expected: list[tuple[str, str]] = []
    for i in range(30):  # three sources, interleaved, spread over the shards
        at = NOW - 3600 + i * 10
        if i % 3 == 0:
            parts.run(stamp("key:alice", at, f"r{i}", idempotency_key=f"idem-{i}"), f"exec{i:03d}")
            expected.append(("command.run", f"exec{i:03d}"))
        elif i % 3 == 1:
            version = parts.write(stamp("key:bob", at, f"r{i}"), f"k{i}", {"i": i})
            expected.append(("state.written", f"k{i}#{version}"))
        else:
            parts.log.record(stamp("admin", at, f"r{i}").with_action("key.created"), f"key{i}", {"key_id": f"key{i}"})
            expected.append(("key.created", f"key{i}"))
    assert len({shard_of(f"exec{i:03d}") for i in range(0, 30, 3)}) == AUDIT_SHARDS  # the merge spans shards

    for limit in (1, 4, 7, 100):
        entries, pages = parts.everything(limit)
        seen = [
            (e["action"], e.get("execution_id") or (f"{e['key']}#{e['version']}" if "key" in e else e["target"]))
            for e in entries
        ]
        assert seen == expected, f"limit {limit}"
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
        assert pages >= len(expected) // limit
    first = parts.everything(100)[0][0]
    assert first == {
        "at": "2027-01-15T07:00:00.000Z",
        "action": "command.run",
        "principal": "key:alice",
        "request_id": "r0",
        "source_ip": "203.0.113.7",
        "execution_id": "exec000",
        "command": "echo",
        "idempotency_key": "idem-0",
    }


def test_filters_by_principal_and_action(parts: Parts) -> None:
    parts.run(stamp("key:alice", NOW - 50, "r1"), "exec1")
    parts.write(stamp("key:alice", NOW - 40, "r2"), "prefs", {"a": 1})
    parts.write(stamp("key:bob", NOW - 30, "r3"), "prefs", None, action="state.deleted")
    parts.log.record(stamp("admin", NOW - 20, "r4").with_action("key.revoked"), "k1", {"key_id": "k1"})
    alice, _ = parts.everything(1, principal="key:alice")
    assert [(e["action"], e["request_id"]) for e in alice] == [("command.run", "r1"), ("state.written", "r2")]
    deleted, _ = parts.everything(2, action="state.deleted")
    assert [(e["principal"], e["key"], e["version"]) for e in deleted] == [("key:bob", "prefs", 2)]


def test_a_page_walks_the_days_since_and_never_shows_what_is_older(parts: Parts) -> None:
    parts.log.record(stamp("admin", NOW - 3 * DAY, "old").with_action("key.created"), "k0", {})
    parts.log.record(stamp("admin", NOW - 2 * DAY, "r1").with_action("key.created"), "k1", {})
    parts.log.record(stamp("admin", NOW - 60, "r2").with_action("key.revoked"), "k1", {})
    page, cursor = parts.trail.page(since=NOW - 2 * DAY - 1, limit=10)
    assert ([e["request_id"] for e in page], cursor) == (["r1", "r2"], None)
    parts.clock.now = NOW - 2 * DAY + RETENTION_S + 1  # the first two are past the retention now
    page, _ = parts.trail.page(since=0, limit=10)  # since is clamped to the retention
    assert [e["request_id"] for e in page] == ["r2"]


def test_empty_days_are_walked_a_bounded_number_per_page(parts: Parts) -> None:
    parts.log.record(stamp("admin", NOW - 20 * DAY, "early").with_action("key.created"), "k0", {})
    parts.log.record(stamp("admin", NOW - 60, "late").with_action("key.revoked"), "k0", {})
    pages: list[list[str]] = []
    cursor = None
    while True:
        page, cursor = parts.trail.page(since=NOW - 21 * DAY, limit=10, cursor=cursor)
        pages.append([e["request_id"] for e in page])
        if cursor is None:
            break
    assert pages[0] == ["early"] and pages[-1] == ["late"]
    assert 3 <= len(pages) <= 4  # 7 days a page at most; the empty pages between carry a cursor
    assert all(not page for page in pages[1:-1])


def test_a_version_entry_outlives_its_value_as_the_writes_audit_entry(parts: Parts) -> None:
    version = parts.write(stamp("key:alice", NOW, "r1"), "prefs", {"secret-ish": "value"})
    item = parts.state_table.get_item(Key={"pk": "key#prefs", "sk": f"v#{version:012d}"})["Item"]
    assert int(item["expires_at"]) == int(NOW) + RETENTION_S  # TTL: the audit retention
    assert int(item["retained_until"]) == int(NOW) + 3600  # the value's own retention
    assert parts.state.version("prefs", version) is not None
    parts.clock.now = NOW + 3601
    assert parts.state.version("prefs", version) is None  # the value is no longer retained ...
    entries, _ = parts.everything(10)
    assert [(e["key"], e["version"]) for e in entries] == [("prefs", 1)]  # ... its audit entry is
    assert "secret-ish" not in json.dumps(entries)
    unaudited = parts.state.commit("other", None, "1", digest_of(1))
    item = parts.state_table.get_item(Key={"pk": "key#other", "sk": f"v#{unaudited.version:012d}"})["Item"]
    assert "audit_day" not in item and "retained_until" not in item
    assert int(item["expires_at"]) == int(parts.clock.now) + 3600


def test_hostile_queries_are_400s(parts: Parts) -> None:
    for kwargs in ({"action": "key.stolen"}, {"principal": "a b"}, {"cursor": "not-a-cursor"}):
        with pytest.raises(errors.ProblemError) as refused:
            parts.trail.page(since=NOW, limit=10, **kwargs)
        assert refused.value.status == 400
    forged = "eyJkYXkiOiIxOTcwIiwiYWZ0ZXIiOiIifQ"  # {"day":"1970","after":""}
    with pytest.raises(errors.ProblemError):
        parts.trail.page(since=NOW, limit=10, cursor=forged)
    for since in ("yesterday", "2026-13-01T00:00:00Z", "2026-12-01", ""):
        with pytest.raises(errors.ProblemError):
            parse_since(since, NOW)
    assert parse_since("2027-01-15T08:00:00Z", 0) == NOW
    assert parse_since(None, NOW) == NOW - DAY


def test_an_admin_item_is_written_once_and_carries_no_more_than_it_was_given(parts: Parts) -> None:
    given = stamp("admin", NOW, "r1").with_action("key.created")
    assert parts.log.record(given, "k1", {"key_id": "k1", "name": "ci"})
    assert not parts.log.record(given, "k1", {"key_id": "k1", "name": "overwritten"})  # same request, same target
    (item,) = parts.control_table.scan()["Items"]
    assert json.loads(item["details_json"]) == {"key_id": "k1", "name": "ci"}
    assert int(item["expires_at"]) == int(NOW) + RETENTION_S


def test_the_stamp_of_a_request_trusts_only_an_address() -> None:
    event = {"requestContext": {"requestId": "abc", "identity": {"sourceIp": "198.51.100.2"}}}
    assert stamp_from_event(event, "key:a", action="state.written").source_ip == "198.51.100.2"
    forged = {"requestContext": {"requestId": "x" * 500, "identity": {"sourceIp": "1.2.3.4, evil"}}}
    got = stamp_from_event(forged, "key:a")
    assert (got.source_ip, len(got.request_id)) == ("-", 128)
    assert stamp_from_event({}, "key:a").request_id == "-"
    with pytest.raises(ValueError):
        stamp_from_event(event, "key:a", action="not.an.action")
