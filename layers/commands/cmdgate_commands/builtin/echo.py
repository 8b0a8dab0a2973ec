"""`echo`: returns its params; the smallest end-to-end proof that the path works."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, command


class EchoParams(BaseModel):
    """Anything JSON under `message` and `data`."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    message: str = Field(default="", max_length=4096)
    data: dict[str, Any] | list[Any] | None = None


@command("echo", description="Return the given params unchanged.", params=EchoParams, timeout_s=5, retry_safe=True)
def echo(params: EchoParams, context: CommandContext) -> dict[str, Any]:
    """Echo the params back."""
    return params.model_dump(exclude_none=True)
