"""Runs one command attempt: hooks, a hard timeout, and a bounded result."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from cmdgate.aws_errors import is_unavailable
from cmdgate.commands import (
    CommandCancelled,
    CommandContext,
    CommandError,
    CommandSpec,
    DependencyRefused,
    TransientCommandError,
)
from cmdgate.errors import ProblemError

UNAVAILABLE_RETRY_AFTER_S = 1  # AWS throttling past botocore's retries: come back shortly


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: a result, or an error with a status and code."""

    ok: bool
    result: Any = None
    status: int = 200
    code: str = ""
    detail: str = ""
    retryable: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # False for a refusal before any effect (an open circuit): the answer is not stored for replay.
    started: bool = True
    cancelled: bool = False  # the command stopped because a cancel was requested
    duration_ms: float = 0.0  # the attempt's run time (set by the execution service)


def run_attempt(spec: CommandSpec, params: BaseModel, context: CommandContext, max_result_bytes: int) -> Outcome:
    """Run the command with its hooks; never raises for a command's own failure."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            for hook in spec.pre_hooks:
                hook(spec, params, context)
            box["result"] = spec.handler(params, context)
            for hook in spec.post_hooks:
                hook(spec, params, context)
        except BaseException as exc:  # noqa: BLE001 - the outcome records it
            box["error"] = exc

    # A daemon thread, since Python cannot kill a thread: on timeout the
    # caller gets its answer and the thread is abandoned with the environment.
    worker = threading.Thread(target=target, name=f"command-{spec.name}", daemon=True)
    worker.start()
    worker.join(timeout=max(0.0, context.deadline - time.monotonic()))
    if worker.is_alive():
        return Outcome(False, status=504, code="COMMAND_TIMEOUT", detail=f"The command ran past {spec.timeout_s} s.")
    error = box.get("error")
    if isinstance(error, DependencyRefused):
        return Outcome(
            False,
            status=error.status,
            code=error.code,
            detail=error.detail,
            retryable=True,
            headers={"Retry-After": str(error.retry_after_s)},
            started=False,
        )
    if isinstance(error, ProblemError):  # a layer error raised inside a command (e.g. an open breaker)
        return Outcome(
            False,
            status=error.status,
            code=error.code,
            detail=error.detail,
            retryable=error.status >= 500,
            headers=dict(error.headers),
        )
    if isinstance(error, CommandCancelled):
        return Outcome(False, status=error.status, code=error.code, detail=error.detail, cancelled=True)
    if isinstance(error, TransientCommandError):
        return Outcome(False, status=error.status, code=error.code, detail=error.detail, retryable=True)
    if isinstance(error, CommandError):
        return Outcome(False, status=error.status, code=error.code, detail=error.detail)
    if error is not None and spec.retry_safe and is_unavailable(error):
        # AWS throttled or failed a call past botocore's retries: a retry-safe command (its effects keyed
        # by the execution id) is asked to come back, not answered for good, so a retry under the same
        # Idempotency-Key runs it again (and applies nothing twice) instead of replaying a 500.
        return Outcome(
            False,
            status=503,
            code="DEPENDENCY_UNAVAILABLE",
            detail="A dependency is busy or unavailable; retry shortly.",
            retryable=True,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
            started=False,
        )
    if error is not None:
        return Outcome(
            False, status=500, code="COMMAND_FAILED", detail="The command failed unexpectedly.", retryable=True
        )
    result = box.get("result")
    try:
        encoded = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return Outcome(False, status=500, code="RESULT_NOT_JSON", detail="The command returned a non-JSON result.")
    if len(encoded.encode("utf-8")) > max_result_bytes:
        return Outcome(
            False, status=500, code="RESULT_TOO_LARGE", detail=f"The result is over {max_result_bytes} bytes."
        )
    return Outcome(True, result=result)
