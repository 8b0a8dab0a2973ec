"""CommandStats: one count per (execution, status), however often SQS delivers the event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cmdgate.stats import EVENT_MARKER_TTL_S, CommandStats, parse_event

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
