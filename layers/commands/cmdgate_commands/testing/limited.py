"""`limited`: an echo with a rate limit of its own (2 per 60 s), tighter than any caller's (testing pack)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cmdgate.commands import CommandContext, command


class LimitedParams(BaseModel):
    """Anything to echo back."""

    model_config = ConfigDict(defer_build=True, extra="allow")


@command(
    "limited",
    description="Echo the params; at most 2 runs per 60 s per caller on top of the caller's own limit (testing pack).",
    params=LimitedParams,
    rate_limit=(2, 60),
    retry_safe=True,
)
def limited(params: LimitedParams, context: CommandContext) -> dict[str, Any]:
    """The params, as given."""
    return params.model_dump()
