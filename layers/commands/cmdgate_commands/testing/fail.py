"""`fail`: fails on purpose, transiently for the first `times` attempts or permanently."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, CommandError, TransientCommandError, command


class FailParams(BaseModel):
    """How to fail."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    mode: Literal["transient", "permanent"] = "permanent"
    times: int | None = Field(default=None, ge=0, description="Fail only the first N attempts (transient).")
    status: int = Field(default=500, ge=400, le=599, description="HTTP status of a permanent failure.")


@command("fail", description="Fail on purpose (testing pack).", params=FailParams, timeout_s=5, retry_safe=True)
def fail(params: FailParams, context: CommandContext) -> dict[str, int]:
    """Raise the requested failure, or succeed once `times` attempts have failed."""
    if params.times is not None and context.attempt > params.times:
        return {"attempt": context.attempt}
    if params.mode == "transient":
        raise TransientCommandError(f"transient failure on attempt {context.attempt}")
    raise CommandError("permanent failure requested", status=params.status, code="COMMAND_FAILED")
