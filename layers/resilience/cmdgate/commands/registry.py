"""The command registry: what a command is, and the decorator that declares one."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cmdgate.auth.routes import command_permission

Mode = Literal["sync", "async"]
IdempotencyPolicy = Literal["required", "optional"]
MAX_SYNC_TIMEOUT_S = 28.0  # API Gateway ends an integration at 29 s


class NoParams(BaseModel):
    """Params model for commands that take none."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class CommandContext:
    """What a running command may know about its execution."""

    execution_id: str
    principal_id: str
    attempt: int
    deadline: float  # time.monotonic() value

    def remaining_s(self) -> float:
        """Seconds left before the command's timeout."""
        return max(0.0, self.deadline - time.monotonic())


CommandHandler = Callable[[Any, CommandContext], Any]
Hook = Callable[["CommandSpec", BaseModel, CommandContext], None]


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
    registry: CommandRegistry | None = None,
) -> Callable[[CommandHandler], CommandHandler]:
    """Declare a command: `@command("echo", description=..., params=EchoParams)`."""

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
            )
        )
        return handler

    return decorate


def load_packs(packs: Iterable[str]) -> None:
    """Import the command packs (modules `cmdgate_commands.<pack>`) so their commands register."""
    for pack in packs:
        if not pack.isidentifier():
            raise ValueError(f"invalid command pack name {pack!r}")
        importlib.import_module(f"cmdgate_commands.{pack}")
