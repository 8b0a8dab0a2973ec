"""Authorization: one `authorize(principal, action, resource)` for routes, commands and the worker.

Permissions are glob patterns held by a principal (cmdgate.auth.permissions); an action
names what is done and a resource what it is done to:

| action          | resource        | permission needed              |
|-----------------|-----------------|--------------------------------|
| `commands.list` | -               | `commands.list`                |
| `commands.run`  | a command name  | `commands.run:<name>`; a command may declare another (`may_run`) |
| `state.read`    | a state key     | `state.read:<key>`             |
| `state.write`   | a state key     | `state.write:<key>`            |
| `admin`         | -               | `admin`                        |
| `executions.read` | the owner's principal id | none: the owner, or `admin` |

`admin` grants every action. A command that touches state declares which of its params name
state keys and what it does with them (`CommandSpec.state_keys`); running it needs the
command's permission *and* that access to every such key, checked before it runs or is queued,
and again by the worker with the permissions the execution record kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from cmdgate import errors
from cmdgate.auth.permissions import SCOPED_ACTIONS, Principal

if TYPE_CHECKING:
    from cmdgate.commands import CommandSpec

Action = Literal["commands.list", "commands.run", "state.read", "state.write", "admin", "executions.read"]
StateAccess = Literal["read", "write"]
SYSTEM_PREFIX = "system."  # the state namespace only cmdgate writes


def permission_for(action: Action, resource: str | None = None) -> str:
    """The permission string that grants `action` on `resource`."""
    if action in SCOPED_ACTIONS:
        if not resource:
            raise ValueError(f"{action} needs a resource")
        return f"{action}:{resource}"
    return action


def command_permission(command_name: str) -> str:
    """The default permission that lets a principal run a command."""
    return permission_for("commands.run", command_name)


def may(principal: Principal, action: Action, resource: str | None = None) -> bool:
    """True if the principal may do `action` on `resource`."""
    if action == "executions.read":
        return principal.is_admin or principal.principal_id == resource
    if action == "state.write" and resource is not None and resource.startswith(SYSTEM_PREFIX):
        return False  # written by cmdgate itself only (e.g. system.command-stats), never by a caller
    return principal.can(permission_for(action, resource))


def authorize(principal: Principal, action: Action, resource: str | None = None) -> None:
    """Raise 403 Forbidden unless the principal may do `action` on `resource`."""
    if not may(principal, action, resource):
        raise errors.Forbidden(_refusal(action, resource))


def may_run(principal: Principal, spec: CommandSpec) -> bool:
    """True if the principal holds the command's permission (`commands.run:<name>` unless it declares another)."""
    return principal.can(spec.permission)


def authorize_state(principal: Principal, key: str, access: StateAccess) -> None:
    """403 unless the principal may `read` or `write` the state key."""
    authorize(principal, "state.read" if access == "read" else "state.write", key)


def authorize_command(principal: Principal, spec: CommandSpec, params: Any) -> None:
    """The command's own permission and the state access of every key its params name (403)."""
    if not may_run(principal, spec):
        raise errors.Forbidden(f"Not permitted to run command {spec.name!r}.")
    for key, access in state_keys_of(spec, params):
        authorize_state(principal, key, access)


def state_keys_of(spec: CommandSpec, params: Any) -> Iterable[tuple[str, StateAccess]]:
    """(key, access) for every state key the validated params name, as the command declares."""
    for field_name, accesses in spec.state_keys.items():
        value = getattr(params, field_name, None) if not isinstance(params, dict) else params.get(field_name)
        keys = value if isinstance(value, list | tuple) else [value]
        for key in keys:
            if not isinstance(key, str):
                # A declared key param must always hold a key: a command that lets it be absent
                # would run unchecked, so refuse instead of guessing.
                raise errors.Forbidden(f"Command {spec.name!r} names no state key in {field_name!r}.")
            for access in accesses:
                yield key, access


def _refusal(action: Action, resource: str | None) -> str:
    if action == "commands.run":
        return f"Not permitted to run command {resource!r}."
    if action == "state.write" and resource is not None and resource.startswith(SYSTEM_PREFIX):
        return f"State keys under {SYSTEM_PREFIX!r} are written by cmdgate only."
    if action in ("state.read", "state.write"):
        return f"Not permitted to {action.split('.', 1)[1]} state {resource!r}."
    if action == "admin":
        return "This route needs the admin permission."
    return f"Not permitted: {action}."
