"""`sleep`: holds an execution for a while, to exercise timeouts and concurrency."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, command


class SleepParams(BaseModel):
    """How long to sleep."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=10)


@command(
    "sleep", description="Sleep for `seconds` (testing pack); times out after 3 s.", params=SleepParams, timeout_s=3
)
def sleep(params: SleepParams, context: CommandContext) -> dict[str, float]:
    """Sleep for the requested time."""
    time.sleep(params.seconds)  # past the timeout on purpose: the runner, not the command, enforces it
    return {"slept_s": params.seconds}
