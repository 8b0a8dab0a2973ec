"""CommandStats: one count per (execution, status), however often SQS delivers the event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cmdgate.stats import (
    EVENT_MARKER_TTL_S,
    CommandStats,
    StatsMirror,
    bucket_of,
    bucket_upper_ms,
    parse_event,
    percentile_ms,
)

NOW = 1_700_000_000


@pytest.fixture
def control(table_like: Callable[[str], Any]) -> Any:
    return table_like("ControlTable")


@pytest.fixture
def stats(control: Any, session: boto3.session.Session) -> CommandStats:
    # A plain client, as wiring gives it: the Table resource's client would re-serialise typed values.
    return CommandStats(session.client("dynamodb"), control.name)


def event(execution_id: str = "e1", status: str = "succeeded", command: str = "echo") -> dict[str, Any]:
    return {
        "type": "command.executed",
        "execution_id": execution_id,
        "command": command,
        "principal_id": "key:p",
        "status": status,
        "attempts": 1,
    }


def test_the_same_event_counts_once(stats: CommandStats) -> None:
    assert stats.record(event(), NOW) is True
    assert stats.record(event(), NOW + 1) is False
    assert stats.record(dict(event()), NOW + 3600) is False
    assert stats.get("echo") == {"succeeded": 1}


def test_statuses_and_executions_count_separately(stats: CommandStats) -> None:
    stats.record(event("e1", "succeeded"), NOW)
    stats.record(event("e2", "succeeded"), NOW)
    stats.record(event("e3", "failed"), NOW)
    stats.record(event("e4", "dead_lettered"), NOW)
    stats.record(event("e4", "succeeded"), NOW)  # redriven, then succeeded: a different status
    stats.record(event("e4", "succeeded"), NOW)
    stats.record(event("e5", "failed", command="fail"), NOW)
    assert stats.get("echo") == {"succeeded": 3, "failed": 1, "dead_lettered": 1}
    assert stats.get("fail") == {"failed": 1}
    assert stats.get("never-ran") == {}


def test_a_duplicate_leaves_the_counter_untouched(stats: CommandStats, control: Any) -> None:
    stats.record(event(), NOW)
    before = control.get_item(Key={"pk": "stats#echo"})["Item"]
    stats.record(event(), NOW + 50)
    assert control.get_item(Key={"pk": "stats#echo"})["Item"] == before
    assert int(before["updated_at"]) == NOW


def test_event_markers_expire_after_any_redelivery_could_happen(stats: CommandStats, control: Any) -> None:
    stats.record(event("e9", "failed"), NOW)
    marker = control.get_item(Key={"pk": "event#e9#failed"})["Item"]
    assert int(marker["expires_at"]) == NOW + EVENT_MARKER_TTL_S
    assert EVENT_MARKER_TTL_S > 14 * 86400 - 1  # SQS keeps a message at most 14 days


@pytest.mark.parametrize(
    "broken",
    [
        {"command": "echo", "status": "succeeded"},
        {"command": "echo", "execution_id": "e1"},
        {"status": "succeeded", "execution_id": "e1"},
        {"command": "", "status": "succeeded", "execution_id": "e1"},
        {"command": "echo", "status": 1, "execution_id": "e1"},
        {"command": "echo", "status": "succeeded", "execution_id": None},
    ],
)
def test_an_incomplete_event_is_refused(stats: CommandStats, control: Any, broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="lacks"):
        stats.record(broken, NOW)
    assert control.scan()["Count"] == 0


def test_parse_event() -> None:
    assert parse_event('{"type": "command.executed", "execution_id": "e1"}') == {
        "type": "command.executed",
        "execution_id": "e1",
    }
    assert parse_event('{"type": "state.changed"}') == {"type": "state.changed"}
    for body in ("[]", '"command.executed"', "{}", '{"type": 5}'):
        with pytest.raises(ValueError, match=r"not an event"):
            parse_event(body)
    with pytest.raises(ValueError):
        parse_event("not json")


# -- durations, histogram, summary ----------------------------------------------------


def timed(execution_id: str, ms: float, status: str = "succeeded") -> dict[str, Any]:
    return {**event(execution_id, status), "duration_ms": ms}


def test_buckets_are_a_fixed_log_scale() -> None:
    assert [bucket_of(ms) for ms in (0, 0.5, 1, 1.01, 2, 100, 1e12)] == [0, 0, 0, 1, 4, 27, 120]
    for ms in (1.5, 3, 42, 999, 12345):
        index = bucket_of(ms)
        assert bucket_upper_ms(index - 1) < ms <= bucket_upper_ms(index)


def test_percentile_reads_the_bucket_holding_the_rank() -> None:
    histogram = {bucket_of(10): 95, bucket_of(1000): 5}
    assert percentile_ms(histogram, 0.95) == round(bucket_upper_ms(bucket_of(10)), 1)
    assert percentile_ms({**histogram, bucket_of(1000): 6}, 0.95) == round(bucket_upper_ms(bucket_of(1000)), 1)
    assert percentile_ms({}, 0.95) is None


def test_summary_has_count_outcomes_mean_p95_and_last_run(stats: CommandStats) -> None:
    for i in range(19):
        stats.record(timed(f"a{i}", 10.0), NOW)
    stats.record(timed("slow", 2000.0, "failed"), NOW + 5)
    stats.record(timed("slow", 2000.0, "failed"), NOW + 6)  # a duplicate changes nothing
    summary = stats.summary("echo")
    assert summary is not None
    assert (summary["count"], summary["successes"], summary["failures"]) == (20, 19, 1)
    assert summary["mean_ms"] == round((19 * 10 + 2000) / 20, 1)
    assert 10 <= summary["p95_ms"] < 12  # 19 of 20 runs took 10 ms: the 95th rank is one of them
    assert (summary["last_status"], summary["last_run_at"]) == ("failed", "2023-11-14T22:13:25Z")
    assert stats.summary("never") is None


@pytest.mark.parametrize("duration", [-1, "5", True, None, float("inf")])
def test_a_bad_duration_counts_as_zero(stats: CommandStats, duration: Any) -> None:
    assert stats.record({**event(), "duration_ms": duration}, NOW)
    summary = stats.summary("echo")
    assert summary is not None and summary["count"] == 1 and summary["mean_ms"] == 0


def test_snapshot_lists_every_command_seen(stats: CommandStats) -> None:
    stats.record(event("e1", command="echo"), NOW)
    stats.record(event("e2", command="fail", status="failed"), NOW)
    snapshot = stats.snapshot()
    assert list(snapshot) == ["echo", "fail"]
    assert snapshot["fail"]["failures"] == 1


# -- the coalesced mirror into system.command-stats ----------------------------------------


def test_mirror_is_coalesced_to_one_write_per_interval(stats: CommandStats, session: boto3.session.Session) -> None:
    scheduled: list[int] = []
    written: list[dict[str, Any]] = []
    mirror = StatsMirror(
        session.client("dynamodb"), stats._table, stats, scheduled.append, written.append, interval_s=10
    )
    stats.record(event("e1"), NOW)
    assert mirror.request(NOW) is True
    for i in range(2, 30):  # a burst: no more schedules while one is pending
        stats.record(event(f"e{i}"), NOW)
        assert mirror.request(NOW + 1) is False
    assert scheduled == [10] and written == []
    value = mirror.run(NOW + 10)  # the delayed message
    assert written == [value] and value["commands"]["echo"]["count"] == 29  # the burst's last count
    assert mirror.request(NOW + 11) is True  # released: the next event schedules again
    assert mirror.request(NOW + 12) is False


def test_a_claim_whose_message_could_not_be_sent_is_released(
    stats: CommandStats, session: boto3.session.Session
) -> None:
    def lost(_: int) -> None:
        raise RuntimeError("queue down")

    mirror = StatsMirror(session.client("dynamodb"), stats._table, stats, lost, lambda _: None, interval_s=10)
    with pytest.raises(RuntimeError):
        mirror.request(NOW)
    scheduled: list[int] = []
    again = StatsMirror(session.client("dynamodb"), stats._table, stats, scheduled.append, lambda _: None, 10)
    assert again.request(NOW + 5) is True and scheduled == [10]  # the failed send released its claim


def test_a_claim_left_by_a_crash_lapses(stats: CommandStats, session: boto3.session.Session) -> None:
    crashed = StatsMirror(session.client("dynamodb"), stats._table, stats, lambda _: None, lambda _: None, 10)
    assert crashed.request(NOW) is True  # claimed; say its message is lost with the runtime
    scheduled: list[int] = []
    again = StatsMirror(session.client("dynamodb"), stats._table, stats, scheduled.append, lambda _: None, 10)
    assert again.request(NOW + 5) is False
    assert again.request(NOW + 32) is True and scheduled == [10]


def test_state_changes_count_once_per_key_version_by_namespace(stats: CommandStats, control: Any) -> None:
    change = {"type": "state.changed", "key": "team-a.config", "version": 3, "deleted": False}
    assert stats.record_state_change(change, NOW) is True
    assert stats.record_state_change(dict(change), NOW + 1) is False
    assert stats.record_state_change({**change, "version": 4, "deleted": True}, NOW + 2) is True
    assert stats.record_state_change({**change, "key": "plain"}, NOW + 2) is True
    item = control.get_item(Key={"pk": "statestats#team-a"})["Item"]
    assert (int(item["changes"]), int(item["deletes"]), int(item["last_change_at"])) == (1, 1, NOW + 2)
    assert int(control.get_item(Key={"pk": "statestats#_default"})["Item"]["changes"]) == 1
    for broken in ({"key": "k"}, {"key": "", "version": 1}, {"key": "k", "version": True}):
        with pytest.raises(ValueError, match="lacks"):
            stats.record_state_change(broken, NOW)


class CountingClient:
    """A DynamoDB client that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls += 1
            return method(**kwargs)

        return call


def test_a_burst_costs_each_environment_one_claim_call(stats: CommandStats, session: boto3.session.Session) -> None:
    first, second = CountingClient(session.client("dynamodb")), CountingClient(session.client("dynamodb"))
    claimed = StatsMirror(first, stats._table, stats, lambda _: None, lambda _: None, interval_s=10)
    other = StatsMirror(second, stats._table, stats, lambda _: None, lambda _: None, interval_s=10)
    assert claimed.request(NOW) is True
    assert [other.request(NOW + t % 9) for t in range(50)] == [False] * 50  # another environment's burst
    assert [claimed.request(NOW + t % 9) for t in range(50)] == [False] * 50
    assert (first.calls, second.calls) == (1, 1)  # the refusal told `other` when the claim is due
    assert other.request(NOW + 10) is False and second.calls == 2  # due, but its message is late: asks again
    # ...and on every event while it is late: a count just after the late run's read must still claim.
    assert other.request(NOW + 10) is False and second.calls == 3
    claimed.run(NOW + 10)  # the late message: releases the claim, then reads
    assert other.request(NOW + 10) is True and second.calls == 4
