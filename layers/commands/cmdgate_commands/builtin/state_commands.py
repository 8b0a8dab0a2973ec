"""Commands over versioned state: `state.get`, `state.merge`, `counter.increment`.

Each declares the param that names its key, so running it needs `commands.run:<name>` and
the same `state.read:<key>` / `state.write:<key>` the state routes need (they all answer the
value, so the writers need read too). The state service comes from the command's context.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cmdgate import errors
from cmdgate.commands import CommandContext, command
from cmdgate.state.service import Preconditions

StateKey = Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,127}$")


class GetParams(BaseModel):
    """Which key."""

    model_config = ConfigDict(defer_build=True, extra="forbid")
    key: str = StateKey


class MergeParams(BaseModel):
    """An RFC 7396 merge patch for a key."""

    model_config = ConfigDict(defer_build=True, extra="forbid")
    key: str = StateKey
    patch: dict[str, Any]


class IncrementParams(BaseModel):
    """A counter and the amount to add."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)
    key: str = StateKey
    by: int = Field(default=1, ge=-(10**12), le=10**12)


class NotACounter(errors.ProblemError):
    """The key holds something other than an integer: nothing is written."""

    status, code, title = 409, "STATE_NOT_A_COUNTER", "State value is not a counter"


@command(
    "state.get",
    description="Read a state key's value and version.",
    params=GetParams,
    timeout_s=10,
    state_keys={"key": ("read",)},
    retry_safe=True,  # no effect
)
def state_get(params: GetParams, context: CommandContext) -> dict[str, Any]:
    """The value and its version."""
    register = context.state().get(params.key)
    return {"key": params.key, "version": register.version, "value": register.value}


@command(
    "state.merge",
    description="Merge-patch a state key (RFC 7396); concurrent patches never lose an update.",
    params=MergeParams,
    timeout_s=15,
    state_keys={"key": ("read", "write")},
    retry_safe=True,  # the patch is applied once per execution id
)
def state_merge(params: MergeParams, context: CommandContext) -> dict[str, Any]:
    """Apply the patch; returns the new version and value."""
    register = context.state().patch(params.key, params.patch, Preconditions(), effect=context.execution_id)
    return {"key": params.key, "version": register.version, "value": register.value}


@command(
    "counter.increment",
    description="Add `by` to the integer at state key `key` (created at 0); concurrent increments never lose one.",
    params=IncrementParams,
    timeout_s=15,
    state_keys={"key": ("read", "write")},
    retry_safe=True,  # the increment is applied once per execution id
)
def counter_increment(params: IncrementParams, context: CommandContext) -> dict[str, Any]:
    """The counter's new value; concurrent increments never lose one; a non-integer is left untouched (409)."""
    service = context.state()
    service.ensure(params.key, 0)

    def add(current: Any) -> Any:
        if not isinstance(current, int) or isinstance(current, bool):
            raise NotACounter(f"State {params.key!r} holds {type(current).__name__}, not an integer.")
        return current + params.by

    register = service.update(params.key, add, effect=context.execution_id)
    return {"key": params.key, "version": register.version, "value": register.value}
