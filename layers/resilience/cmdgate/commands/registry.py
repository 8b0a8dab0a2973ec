"""The command registry: what a command is, and the decorator that declares one."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from cmdgate.authz import StateAccess, command_permission
from cmdgate.ratelimit.policy import RateLimitPolicy

if TYPE_CHECKING:
    from cmdgate.breaker import BreakerStore
    from cmdgate.config import Settings
    from cmdgate.state.service import StateService

Mode = Literal["sync", "async"]
IdempotencyPolicy = Literal["required", "optional"]
MAX_SYNC_TIMEOUT_S = 28.0  # API Gateway ends an integration at 29 s


class NoParams(BaseModel):
    """Params model for commands that take none."""

    model_config = ConfigDict(defer_build=True, extra="forbid")


class CommandServices(Protocol):
    """What the composition root lends to commands; each part is built on first use."""

    @property
    def settings(self) -> Settings: ...

    def state_service(self, remaining_s: Callable[[], float] | None = None) -> StateService: ...

    def breaker_store(self) -> BreakerStore: ...

    def aws_client(self, service: str) -> Any: ...

    def secret(self, arn: str) -> str: ...


class NoServices:
    """For contexts built without a composition root (unit tests of pure commands): every use fails."""

    @property
    def settings(self) -> Settings:
        raise RuntimeError("this command context has no services")

    def state_service(self, remaining_s: Callable[[], float] | None = None) -> StateService:
        raise RuntimeError("this command context has no services")

    def breaker_store(self) -> BreakerStore:
        raise RuntimeError("this command context has no services")

    def aws_client(self, service: str) -> Any:
        raise RuntimeError("this command context has no services")

    def secret(self, arn: str) -> str:
        raise RuntimeError("this command context has no services")


@dataclass
class CommandContext:
    """What a running command may know about its execution, and the services it may use."""

    execution_id: str
    principal_id: str
    attempt: int
    deadline: float  # time.monotonic() value
    services: CommandServices = field(default_factory=NoServices)
    # Asks whether a cancel was requested (async runs read their record); None: this run cannot be cancelled.
    cancel_probe: Callable[[], bool] | None = None
    cancel_probe_interval_s: float = 1.0
    _cancel_checked_at: float = field(default=float("-inf"), repr=False)
    _cancel_seen: bool = field(default=False, repr=False)

    def remaining_s(self) -> float:
        """Seconds left before the command's timeout."""
        return max(0.0, self.deadline - time.monotonic())

    def cancel_requested(self) -> bool:
        """Whether the caller asked to cancel this execution (cooperative: a command that checks it may stop,
        raising CommandCancelled). Reads at most once per `cancel_probe_interval_s`."""
        if self._cancel_seen or self.cancel_probe is None:
            return self._cancel_seen
        now = time.monotonic()
        if now - self._cancel_checked_at >= self.cancel_probe_interval_s:
            self._cancel_checked_at = now
            self._cancel_seen = bool(self.cancel_probe())
        return self._cancel_seen

    def state(self) -> StateService:
        """The state service, its lock leases capped by this command's remaining time."""
        return self.services.state_service(self.remaining_s)


CommandHandler = Callable[[Any, CommandContext], Any]
Hook = Callable[["CommandSpec", BaseModel, CommandContext], None]


@dataclass(frozen=True)
class FollowUp:
    """A command to queue when a run ends: `params(outcome)` derives its params from the finished run.

    `outcome` is the parent's public view (`result` when it succeeded, `error` when it failed). The
    follow-up runs async with the permissions the parent was authorized with; `params` returning
    None skips it. cmdgate.followups queues it once per parent (its id derives from the parent's).
    """

    command: str
    params: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda _: {}


@dataclass(frozen=True)
class CommandSpec:
    """A declared command."""

    name: str
    description: str
    params_model: type[BaseModel]
    handler: CommandHandler
    permission: str
    idempotency: IdempotencyPolicy = "optional"
    modes: tuple[Mode, ...] = ("sync", "async")
    timeout_s: float = 10.0
    pre_hooks: tuple[Hook, ...] = field(default=())
    post_hooks: tuple[Hook, ...] = field(default=())
    # Params naming state keys, and what the command does with each (cmdgate.authz checks them).
    state_keys: Mapping[str, tuple[StateAccess, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # A limit of the command's own, on top of the caller's (both apply).
    rate_limit: RateLimitPolicy | None = None
    # May be attempted again after an attempt died or timed out mid-run (its effects are keyed by the
    # execution id, or it has none). Not retry-safe: such an execution fails instead of running twice.
    retry_safe: bool = False
    # Follow-ups queued when a run succeeds, or fails (failed or dead-lettered).
    on_success: tuple[FollowUp, ...] = ()
    on_failure: tuple[FollowUp, ...] = ()

    def parse_params(self, raw: Mapping[str, Any]) -> BaseModel:
        """The params model from a JSON object, validated as JSON strictly: `true` is no integer, `"5"` no number.

        Strict JSON mode keeps what JSON has no type for (a datetime or UUID as a string) and refuses
        pydantic's lax coercions, for every command alike. Raises pydantic's ValidationError.
        """
        return self.params_model.model_validate_json(json.dumps(raw), strict=True)

    def describe(self) -> dict[str, Any]:
        """The public description shown by `GET /v1/commands`."""
        return {
            "name": self.name,
            "description": self.description,
            "params_schema": self.params_model.model_json_schema(),
            "permission": self.permission,
            "idempotency": self.idempotency,
            "modes": list(self.modes),
            "timeout_s": self.timeout_s,
            "retry_safe": self.retry_safe,
            "state_keys": {name: list(accesses) for name, accesses in self.state_keys.items()},
            **(
                {"rate_limit": {"quota": self.rate_limit.quota, "window_s": self.rate_limit.window_s}}
                if self.rate_limit
                else {}
            ),
        }


class CommandRegistry:
    """Commands by name."""

    def __init__(self) -> None:
        self._commands: dict[str, CommandSpec] = {}

    def register(self, spec: CommandSpec) -> None:
        """Add a command; a second command of the same name is a programming error."""
        if spec.name in self._commands and self._commands[spec.name].handler is not spec.handler:
            raise ValueError(f"command {spec.name!r} is already registered")
        if "sync" in spec.modes and spec.timeout_s > MAX_SYNC_TIMEOUT_S:
            raise ValueError(f"command {spec.name!r}: a sync timeout is at most {MAX_SYNC_TIMEOUT_S} s")
        for field_name, accesses in spec.state_keys.items():
            if field_name not in spec.params_model.model_fields or not accesses:
                raise ValueError(f"command {spec.name!r}: state key param {field_name!r} is not a declared param")
        self._commands[spec.name] = spec

    def get(self, name: str) -> CommandSpec | None:
        """The command called `name`, if any."""
        return self._commands.get(name)

    def all(self) -> list[CommandSpec]:
        """Every command, sorted by name."""
        return [self._commands[n] for n in sorted(self._commands)]


default_registry = CommandRegistry()


def command(
    name: str,
    *,
    description: str,
    params: type[BaseModel] = NoParams,
    permission: str | None = None,
    idempotency: IdempotencyPolicy = "optional",
    modes: Iterable[Mode] = ("sync", "async"),
    timeout_s: float = 10.0,
    pre_hooks: Iterable[Hook] = (),
    post_hooks: Iterable[Hook] = (),
    state_keys: Mapping[str, Iterable[StateAccess]] | None = None,
    rate_limit: tuple[int, int] | None = None,
    retry_safe: bool = False,
    on_success: FollowUp | Iterable[FollowUp] = (),
    on_failure: FollowUp | Iterable[FollowUp] = (),
    registry: CommandRegistry | None = None,
) -> Callable[[CommandHandler], CommandHandler]:
    """Declare a command: `@command("echo", description=..., params=EchoParams)`.

    `state_keys={"key": ("read", "write")}` says param `key` names a state key the command reads
    and writes (callers need `state.read:`/`state.write:` on it); `rate_limit=(quota, window_s)`
    adds a limit of the command's own on top of each caller's. `retry_safe=True` says an attempt that
    died or timed out mid-run may be made again (effects keyed by `context.execution_id`, or none).
    adds a limit of the command's own on top of each caller's; `on_success` / `on_failure` name
    follow-up commands (`FollowUp`) queued when a run ends.
    """

    def decorate(handler: CommandHandler) -> CommandHandler:
        (registry or default_registry).register(
            CommandSpec(
                name=name,
                description=description,
                params_model=params,
                handler=handler,
                permission=permission or command_permission(name),
                idempotency=idempotency,
                modes=tuple(modes),
                timeout_s=timeout_s,
                pre_hooks=tuple(pre_hooks),
                post_hooks=tuple(post_hooks),
                state_keys=MappingProxyType({k: tuple(v) for k, v in (state_keys or {}).items()}),
                rate_limit=RateLimitPolicy(rate_limit[0], rate_limit[1], f"command.{name}") if rate_limit else None,
                retry_safe=retry_safe,
                on_success=_follow_ups(on_success),
                on_failure=_follow_ups(on_failure),
            )
        )
        return handler

    return decorate


def _follow_ups(declared: FollowUp | Iterable[FollowUp]) -> tuple[FollowUp, ...]:
    found = (declared,) if isinstance(declared, FollowUp) else tuple(declared)
    if not all(isinstance(f, FollowUp) for f in found):
        raise TypeError("on_success / on_failure take FollowUp values")
    return found


def load_packs(packs: Iterable[str]) -> None:
    """Import the command packs (modules `cmdgate_commands.<pack>`) so their commands register."""
    for pack in packs:
        if not pack.isidentifier():
            raise ValueError(f"invalid command pack name {pack!r}")
        importlib.import_module(f"cmdgate_commands.{pack}")
