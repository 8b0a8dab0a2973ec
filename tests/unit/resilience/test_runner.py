"""run_attempt: one command attempt's outcome, whatever the command does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from cmdgate import errors
from cmdgate.commands import (
    CommandContext,
    CommandError,
    CommandSpec,
    DependencyRefused,
    NoParams,
    TransientCommandError,
)
from cmdgate.executions.runner import Outcome, run_attempt

MAX = 256 * 1024


def spec_of(handler: Callable[[Any, CommandContext], Any], **kwargs: Any) -> CommandSpec:
    return CommandSpec(
        name="t",
        description="test command",
        params_model=NoParams,
        handler=handler,
        permission="commands.run:t",
        **kwargs,
    )


def context(seconds: float = 5.0, attempt: int = 1) -> CommandContext:
    return CommandContext(execution_id="e1", principal_id="key:p", attempt=attempt, deadline=time.monotonic() + seconds)


def run(handler: Callable[[Any, CommandContext], Any], max_bytes: int = MAX, **kwargs: Any) -> Outcome:
    return run_attempt(spec_of(handler, **kwargs), NoParams(), context(), max_bytes)


def test_success_returns_the_result() -> None:
    seen: list[CommandContext] = []

    def handler(params: NoParams, ctx: CommandContext) -> dict[str, Any]:
        seen.append(ctx)
        return {"ok": [1, 2.5, "x", None, True]}

    outcome = run(handler)
    assert outcome == Outcome(True, result={"ok": [1, 2.5, "x", None, True]})
    assert [(c.execution_id, c.principal_id, c.attempt) for c in seen] == [("e1", "key:p", 1)]


def test_none_is_a_valid_result() -> None:
    assert run(lambda p, c: None) == Outcome(True, result=None)


@pytest.mark.parametrize(("status", "expected"), [(400, 400), (404, 404), (409, 409), (422, 422), (503, 503)])
def test_command_error_keeps_its_status_and_is_not_retried(status: int, expected: int) -> None:
    def handler(params: NoParams, ctx: CommandContext) -> None:
        raise CommandError("the thing is missing", status=status, code="THING_MISSING")

    outcome = run(handler)
    assert outcome == Outcome(False, status=expected, code="THING_MISSING", detail="the thing is missing")
    assert not outcome.retryable


@pytest.mark.parametrize("status", [200, 302, 399, 600, -1])
def test_command_error_with_a_non_error_status_becomes_500(status: int) -> None:
    def handler(params: NoParams, ctx: CommandContext) -> None:
        raise CommandError("odd", status=status)

    assert run(handler).status == 500


def test_transient_error_is_retryable() -> None:
    def handler(params: NoParams, ctx: CommandContext) -> None:
        raise TransientCommandError("upstream is busy")

    outcome = run(handler)
    assert outcome == Outcome(
        False, status=503, code="COMMAND_TRANSIENT_FAILURE", detail="upstream is busy", retryable=True
    )


@pytest.mark.parametrize("error", [ValueError("password=hunter2"), KeyError("hunter2"), SystemExit("hunter2")])
def test_unexpected_exception_is_retryable_and_never_shown(error: BaseException) -> None:
    def handler(params: NoParams, ctx: CommandContext) -> None:
        raise error

    outcome = run(handler)
    assert not outcome.ok
    assert outcome.retryable
    assert (outcome.status, outcome.code) == (500, "COMMAND_FAILED")
    assert "hunter2" not in outcome.detail
    assert type(error).__name__ not in outcome.detail


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let an abandoned command thread end


def test_timeout_answers_without_waiting_for_the_command(release: threading.Event) -> None:
    entered = threading.Event()
    finished = threading.Event()

    def handler(params: NoParams, ctx: CommandContext) -> str:
        entered.set()
        release.wait(10)  # bounded: if run_attempt waited for it, the outcome would be a success
        finished.set()
        return "too late"

    started = time.monotonic()
    outcome = run_attempt(spec_of(handler, timeout_s=0.01), NoParams(), context(seconds=0.01), MAX)
    elapsed = time.monotonic() - started
    assert outcome == Outcome(False, status=504, code="COMMAND_TIMEOUT", detail="The command ran past 0.01 s.")
    assert not outcome.retryable
    assert not finished.is_set(), "the outcome was given while the command was still running"
    assert elapsed < 5.0
    release.set()
    assert entered.wait(5)
    assert finished.wait(5)


def test_deadline_already_past_times_out_a_blocked_command(release: threading.Event) -> None:
    def handler(params: NoParams, ctx: CommandContext) -> None:
        release.wait(10)

    ctx = context(seconds=-1.0)
    assert ctx.remaining_s() == 0.0
    assert run_attempt(spec_of(handler), NoParams(), ctx, MAX).code == "COMMAND_TIMEOUT"


@pytest.mark.parametrize("result", [{1, 2}, object(), b"bytes", {"when": time}, {"nested": {"set": {1}}}])
def test_non_json_result_fails_permanently(result: Any) -> None:
    outcome = run(lambda p, c: result)
    assert (outcome.ok, outcome.status, outcome.code, outcome.retryable) == (False, 500, "RESULT_NOT_JSON", False)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_infinity_are_not_json(value: float) -> None:
    assert run(lambda p, c: {"value": value}).code == "RESULT_NOT_JSON"


def test_result_size_limit_is_inclusive() -> None:
    result = "x" * 10  # encodes as 12 bytes with its quotes
    assert len(json.dumps(result)) == 12
    assert run(lambda p, c: result, max_bytes=12) == Outcome(True, result=result)
    outcome = run(lambda p, c: result + "x", max_bytes=12)
    assert (outcome.ok, outcome.status, outcome.code, outcome.retryable) == (False, 500, "RESULT_TOO_LARGE", False)
    assert "12 bytes" in outcome.detail


def test_result_size_is_measured_on_the_compact_encoding() -> None:
    result = {"a": [1, 2]}
    compact = len(json.dumps(result, separators=(",", ":")))
    assert run(lambda p, c: result, max_bytes=compact).ok
    assert not run(lambda p, c: result, max_bytes=compact - 1).ok


def test_pre_hook_refusal_stops_the_command() -> None:
    runs: list[int] = []

    def refuse(spec: CommandSpec, params: BaseModel, ctx: CommandContext) -> None:
        raise CommandError("maintenance window", status=423, code="LOCKED")

    def handler(params: NoParams, ctx: CommandContext) -> str:
        runs.append(1)
        return "ran"

    outcome = run(handler, pre_hooks=(refuse,))
    assert outcome == Outcome(False, status=423, code="LOCKED", detail="maintenance window")
    assert runs == []


def test_hooks_run_in_order_around_the_handler() -> None:
    calls: list[str] = []

    def hook(name: str) -> Callable[[CommandSpec, BaseModel, CommandContext], None]:
        def run_hook(spec: CommandSpec, params: BaseModel, ctx: CommandContext) -> None:
            assert spec.name == "t"
            assert isinstance(params, NoParams)
            calls.append(name)

        return run_hook

    def handler(params: NoParams, ctx: CommandContext) -> str:
        calls.append("handler")
        return "done"

    outcome = run(handler, pre_hooks=(hook("pre1"), hook("pre2")), post_hooks=(hook("post"),))
    assert outcome.ok
    assert calls == ["pre1", "pre2", "handler", "post"]


def test_post_hook_failure_fails_the_attempt() -> None:
    def audit_down(spec: CommandSpec, params: BaseModel, ctx: CommandContext) -> None:
        raise TransientCommandError("audit log unavailable")

    outcome = run(lambda p, c: "result", post_hooks=(audit_down,))
    assert not outcome.ok
    assert outcome.retryable
    assert outcome.result is None


@pytest.mark.parametrize(("retry_after_s", "header"), [(30, "30"), (0, "1"), (-5, "1")])
def test_an_open_circuit_is_a_refusal_before_any_effect(retry_after_s: int, header: str) -> None:
    def handler(params: NoParams, ctx: CommandContext) -> None:
        raise DependencyRefused("the payments API circuit is open", retry_after_s=retry_after_s)

    outcome = run(handler)
    assert outcome == Outcome(
        False,
        status=503,
        code="DEPENDENCY_UNAVAILABLE",
        detail="the payments API circuit is open",
        retryable=True,
        headers={"Retry-After": header},
        started=False,
    )


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [
        (errors.DependencyUnavailable("breaker open", headers={"Retry-After": "7"}), 503, True),
        (errors.Forbidden("not yours"), 403, False),
        (errors.CommandTimeout("downstream too slow"), 504, True),
    ],
)
def test_a_layer_error_raised_by_a_command_keeps_its_status_and_headers(
    error: errors.ProblemError, status: int, retryable: bool
) -> None:
    def handler(params: NoParams, ctx: CommandContext) -> None:
        raise error

    outcome = run(handler)
    assert (outcome.ok, outcome.status, outcome.code, outcome.detail) == (False, status, error.code, error.detail)
    assert outcome.retryable is retryable
    assert outcome.headers == error.headers
    assert outcome.started
