"""Follow-ups: queued once per parent, with the parent's permissions, until the chain depth limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from cmdgate.commands import CommandContext, CommandRegistry, FollowUp, command
from cmdgate.executions import ExecutionService, ExecutionStore
from cmdgate.executions.model import Execution
from cmdgate.executions.service import follow_up_id
from cmdgate.followups import FollowUps
from tests.unit.resilience.test_execution_service import RecordingQueue

NOW = 1_700_000_000.0
MAX_DEPTH = 2


class StepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = 0


def registry() -> CommandRegistry:
    commands = CommandRegistry()

    @command(
        "step",
        description="Follows itself with n + 1.",
        params=StepParams,
        registry=commands,
        on_success=FollowUp("step", lambda view: {"n": view["result"]["n"] + 1}),
        on_failure=(
            FollowUp("cleanup", lambda view: {"n": 0} if view["error"]["code"] == "BOOM" else None),
            FollowUp("cleanup", lambda view: {"n": view["no such"]}),  # a derivation that fails is skipped
        ),
    )
    def step(params: StepParams, context: CommandContext) -> dict[str, int]:
        return {"n": params.n}

    @command("cleanup", description="Cleans up.", params=StepParams, registry=commands)
    def cleanup(params: StepParams, context: CommandContext) -> dict[str, int]:
        return {}

    @command("secretive", description="Needs its own permission.", registry=commands, permission="special")
    def secretive(params: Any, context: CommandContext) -> None:
        return None

    @command("plain", description="No follow-ups.", registry=commands)
    def plain(params: Any, context: CommandContext) -> None:
        return None

    return commands


class Harness:
    def __init__(self, table: Any) -> None:
        self.store = ExecutionStore(table)
        self.queue = RecordingQueue()
        self.service = ExecutionService(self.store, self.queue, None, registry(), clock=lambda: NOW)
        self.follow_ups = FollowUps(registry(), self.service, MAX_DEPTH)

    def parent(self, status: str = "succeeded", depth: int = 0, **fields: Any) -> Execution:
        execution = Execution(
            execution_id=f"p{depth}{status[:4]}",
            command=fields.pop("command", "step"),
            principal_id="key:alice",
            mode="async",
            status=status,  # type: ignore[arg-type]
            result={"n": depth} if status == "succeeded" else None,
            error={"code": "BOOM", "detail": "x", "status": 500} if status != "succeeded" else None,  # type: ignore[arg-type]
            created_at="2026-01-01T00:00:00Z",
            permissions=fields.pop("permissions", ("commands.run:step", "commands.run:cleanup")),
            chain_depth=depth,
            **fields,
        )
        self.store.create(execution)
        return execution

    def event(self, parent: Execution) -> dict[str, Any]:
        return {"type": "command.executed", "execution_id": parent.execution_id, "command": parent.command,
                "status": parent.status}  # fmt: skip


@pytest.fixture
def h(table_like: Callable[[str], Any]) -> Harness:
    return Harness(table_like("ExecutionsTable"))


def test_a_success_queues_its_follow_up_with_the_parents_permissions(h: Harness) -> None:
    parent = h.parent()
    report = h.follow_ups.on_executed(h.event(parent))
    assert report.queued == [follow_up_id(parent.execution_id, "s0", "step")]
    child = h.store.get(report.queued[0])
    assert child is not None
    assert (child.status, child.mode, child.params, child.chain_depth) == ("queued", "async", {"n": 1}, 1)
    assert (child.parent_execution_id, child.principal_id) == (parent.execution_id, "key:alice")
    assert child.permissions == parent.permissions
    assert h.queue.sent == [{"execution_id": child.execution_id}]
    assert child.public_view()["parent_execution_id"] == parent.execution_id


def test_a_redelivered_event_never_queues_a_follow_up_twice(h: Harness) -> None:
    parent = h.parent()
    first = h.follow_ups.on_executed(h.event(parent)).queued
    again = h.follow_ups.on_executed(json.loads(json.dumps(h.event(parent)))).queued
    assert first == again  # the same id: one record
    assert len(h.queue.sent) == 2  # still queued and never attempted: its message is sent again
    h.store.begin_attempt(first[0], 10, NOW)  # the worker took it
    h.follow_ups.on_executed(h.event(parent))
    assert len(h.queue.sent) == 2  # now a redelivery sends nothing
    record = h.store.get(first[0])
    assert record is not None and record.attempts == 1


def test_the_chain_stops_at_the_depth_limit(h: Harness) -> None:
    below = h.parent(depth=MAX_DEPTH - 1)
    assert len(h.follow_ups.on_executed(h.event(below)).queued) == 1
    at_limit = h.parent(depth=MAX_DEPTH)
    report = h.follow_ups.on_executed(h.event(at_limit))
    assert report.queued == [] and report.stopped_at_depth
    assert h.store.get(follow_up_id(at_limit.execution_id, "s0", "step")) is None


def test_failures_run_on_failure_and_skip_what_derives_nothing(h: Harness) -> None:
    for status in ("failed", "dead_lettered"):
        parent = h.parent(status)
        assert h.follow_ups.on_executed(h.event(parent)).queued == [follow_up_id(parent.execution_id, "f0", "cleanup")]


def test_a_follow_up_the_parent_could_not_run_is_not_queued(h: Harness) -> None:
    parent = h.parent(permissions=("commands.run:step",))  # cleanup is not permitted
    parent_failed = h.parent("failed", depth=1, permissions=("commands.run:step",))
    assert h.follow_ups.on_executed(h.event(parent_failed)).queued == []
    assert h.service.enqueue_follow_up(parent, "x", "secretive", {}) is None
    assert h.service.enqueue_follow_up(parent, "x", "step", {"n": "not a number"}) is None
    assert h.service.enqueue_follow_up(parent, "x", "nonexistent", {}) is None
    assert h.queue.sent == []


def test_nothing_for_commands_without_follow_ups_or_a_parent_that_moved_on(h: Harness) -> None:
    assert h.follow_ups.on_executed(h.event(h.parent(command="plain"))).queued == []
    assert h.follow_ups.on_executed({"command": "step", "status": "succeeded", "execution_id": "gone"}).queued == []
    moved = h.parent("failed", depth=1)
    assert h.follow_ups.on_executed({**h.event(moved), "status": "succeeded"}).queued == []  # redriven since
    assert h.follow_ups.on_executed({"command": "unknown", "status": "succeeded"}).queued == []
