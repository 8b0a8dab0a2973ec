"""`sleep`: holds an execution for a while, to exercise timeouts and concurrency."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandCancelled, CommandContext, command


class SleepParams(BaseModel):
    """How long to sleep."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    seconds: float = Field(ge=0, le=10)


@command(
    "sleep",
    description="Sleep for `seconds` (testing pack); times out after 3 s; stops early when cancelled.",
    params=SleepParams,
    timeout_s=3,
    retry_safe=True,
)
def sleep(params: SleepParams, context: CommandContext) -> dict[str, float]:
    """Sleep for the requested time, checking for a cancel (cooperatively) as it goes."""
    end = time.monotonic() + params.seconds
    while (left := end - time.monotonic()) > 0:  # past the timeout on purpose: the runner enforces it
        if context.cancel_requested():
            raise CommandCancelled()
        time.sleep(min(0.1, left))
    return {"slept_s": params.seconds}
