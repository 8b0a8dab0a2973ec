"""Waiting for an execution to end: long-polls `GET /v1/executions/{id}?wait=N` and falls back to polling
when the server answers at once (one without `?wait` ignores it), with a live status on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.markup import escape

from cmdgate_cli.client import Api
from cmdgate_cli.output import Output
from cmdgate_cli.problems import CliError, ExitCode, Problem

TERMINAL = frozenset({"succeeded", "failed", "dead_lettered", "cancelled"})
FAILED = frozenset({"failed", "dead_lettered", "cancelled"})
MAX_SERVER_WAIT_S = 20  # the API's limit for ?wait
POLL_FIRST_S, POLL_MAX_S = 0.25, 2.0
# An answer quicker than this to a non-final execution means the server did not long-poll.
QUICK_ANSWER_S = 1.0


def describe(execution: dict[str, Any]) -> str:
    """One line of an execution's progress."""
    parts = [f"{execution.get('execution_id', '?')} {execution.get('command', '')}: {execution.get('status', '?')}"]
    if attempts := execution.get("attempts"):
        parts.append(f"attempt {attempts}")
    if execution.get("cancel_requested"):
        parts.append("cancel requested")
    return ", ".join(parts)


def wait_for_end(
    api: Api,
    execution_id: str,
    timeout_s: float,
    on_update: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """The execution once it has ended; CliError (exit 4) if it has not within `timeout_s`."""
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    deadline = clock() + timeout_s
    interval, long_poll = POLL_FIRST_S, True
    path = f"/v1/executions/{execution_id}"
    while True:
        remaining = deadline - clock()
        wait = max(0, min(MAX_SERVER_WAIT_S, int(remaining)))
        asked = clock()
        if long_poll and wait > 0:
            try:
                execution = api.get_json(path, params={"wait": wait}, timeout_s=wait + 15)
            except CliError as error:
                if error.problem.status != 400:
                    raise
                long_poll = False  # a server that validates its query strictly and knows no `wait`
                continue
        else:
            execution = api.get_json(path)
        on_update(execution)
        if execution.get("status") in TERMINAL:
            return execution
        if clock() >= deadline:
            raise CliError(
                ExitCode.UNAVAILABLE,
                Problem(
                    title="Still not finished",
                    detail=f"{describe(execution)} after {timeout_s:g} s; `cmdgate executions wait {execution_id}` "
                    "waits again.",
                    code="WAIT_TIMEOUT",
                ),
            )
        if clock() - asked < QUICK_ANSWER_S:
            sleep(min(interval, max(0.0, deadline - clock())))
            interval = min(POLL_MAX_S, interval * 2)


def exit_code_of(execution: dict[str, Any]) -> ExitCode:
    return ExitCode.FAILED_RUN if execution.get("status") in FAILED else ExitCode.OK


def watch(api: Api, out: Output, execution_id: str, timeout_s: float) -> dict[str, Any]:
    """wait_for_end with a spinner on a terminal, or one stderr line per change of status otherwise."""
    if out.err.is_terminal:
        started = time.monotonic()
        with out.err.status(f"waiting for {escape(execution_id)}") as status:

            def update(execution: dict[str, Any]) -> None:
                status.update(f"{escape(describe(execution))} [dim]({time.monotonic() - started:.0f} s)[/]")

            return wait_for_end(api, execution_id, timeout_s, update)
    seen: list[str] = []

    def changed(execution: dict[str, Any]) -> None:
        line = describe(execution)
        if not seen or seen[-1] != line:
            seen.append(line)
            out.note(escape(line))

    return wait_for_end(api, execution_id, timeout_s, changed)
