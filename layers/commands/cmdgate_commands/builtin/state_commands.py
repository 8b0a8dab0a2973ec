"""Commands over versioned state: `state.get`, `state.merge`, `counter.increment`.

Running one of them is the permission (`commands.run:<name>`); they reach any key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, command
from cmdgate.state.service import Preconditions
from cmdgate.wiring import state_service

StateKey = Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,127}$")


class GetParams(BaseModel):
    """Which key."""

    model_config = ConfigDict(extra="forbid")
    key: str = StateKey


class MergeParams(BaseModel):
    """An RFC 7396 merge patch for a key."""

    model_config = ConfigDict(extra="forbid")
    key: str = StateKey
    patch: dict[str, Any]


class IncrementParams(BaseModel):
    """A counter and the amount to add."""

    model_config = ConfigDict(extra="forbid")
    key: str = StateKey
    by: int = Field(default=1, ge=-(10**12), le=10**12)


@command("state.get", description="Read a state key's value and version.", params=GetParams, timeout_s=10)
def state_get(params: GetParams, context: CommandContext) -> dict[str, Any]:
    """The value and its version."""
    register = state_service(context.remaining_s).get(params.key)
    return {"key": params.key, "version": register.version, "value": register.value}


@command(
    "state.merge", description="Merge-patch a state key (RFC 7396) under its lock.", params=MergeParams, timeout_s=15
)
def state_merge(params: MergeParams, context: CommandContext) -> dict[str, Any]:
    """Apply the patch; returns the new version and value."""
    register = state_service(context.remaining_s).patch(params.key, params.patch, Preconditions())
    return {"key": params.key, "version": register.version, "value": register.value}


@command(
    "counter.increment",
    description="Add `by` to the number at state key `key` (created at 0), under its lock.",
    params=IncrementParams,
    timeout_s=15,
)
def counter_increment(params: IncrementParams, context: CommandContext) -> dict[str, Any]:
    """The counter's new value; concurrent increments never lose one."""
    service = state_service(context.remaining_s)
    service.ensure(params.key, 0)

    def add(current: Any) -> Any:
        return (current if isinstance(current, int) and not isinstance(current, bool) else 0) + params.by

    register = service.update(params.key, add)
    return {"key": params.key, "version": register.version, "value": register.value}
