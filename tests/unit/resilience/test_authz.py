"""cmdgate.authz: one decision for routes, commands and the worker."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from cmdgate import errors
from cmdgate.auth import Principal
from cmdgate.authz import authorize, authorize_command, may, permission_for, state_keys_of
from cmdgate.commands import CommandRegistry, command


class KeyParams(BaseModel):
    key: str
    other: str | None = None


class KeysParams(BaseModel):
    keys: list[str]


def registry_with_state_commands() -> CommandRegistry:
    registry = CommandRegistry()
    command("s.read", description="", params=KeyParams, state_keys={"key": ("read",)}, registry=registry)(
        lambda p, c: None
    )
    command("s.many", description="", params=KeysParams, state_keys={"keys": ("read", "write")}, registry=registry)(
        lambda p, c: None
    )
    command("s.optional", description="", params=KeyParams, state_keys={"other": ("write",)}, registry=registry)(
        lambda p, c: None
    )
    return registry


def principal(*permissions: str, pid: str = "key:p") -> Principal:
    return Principal(pid, tuple(permissions))


def test_permission_strings_follow_the_grammar() -> None:
    assert permission_for("state.write", "team-a.x") == "state.write:team-a.x"
    assert permission_for("commands.list") == "commands.list"
    with pytest.raises(ValueError, match="needs a resource"):
        permission_for("commands.run")


def test_admin_may_everything_and_globs_scope_keys() -> None:
    admin = principal("admin")
    assert may(admin, "state.write", "prod.db") and may(admin, "executions.read", "key:someone-else")
    scoped = principal("state.read:team-a.*")
    assert may(scoped, "state.read", "team-a.config")
    assert not may(scoped, "state.read", "team-b.config")
    assert not may(scoped, "state.write", "team-a.config")
    with pytest.raises(errors.Forbidden, match=r"write state 'team-a\.config'"):
        authorize(scoped, "state.write", "team-a.config")


def test_executions_are_read_by_their_owner_only() -> None:
    assert may(principal(pid="key:a"), "executions.read", "key:a")
    assert not may(principal("commands.run:*", pid="key:b"), "executions.read", "key:a")


def test_a_command_needs_its_permission_and_every_key_it_names() -> None:
    registry = registry_with_state_commands()
    reader = registry.get("s.read")
    assert reader is not None
    allowed = principal("commands.run:s.read", "state.read:team-a.*")
    authorize_command(allowed, reader, KeyParams(key="team-a.x"))
    with pytest.raises(errors.Forbidden):
        authorize_command(allowed, reader, KeyParams(key="team-b.x"))
    with pytest.raises(errors.Forbidden, match="run command"):
        authorize_command(principal("state.read:*"), reader, KeyParams(key="team-a.x"))


def test_list_params_are_each_checked_for_every_access() -> None:
    many = registry_with_state_commands().get("s.many")
    assert many is not None
    params = KeysParams(keys=["a.1", "b.2"])
    assert list(state_keys_of(many, params)) == [("a.1", "read"), ("a.1", "write"), ("b.2", "read"), ("b.2", "write")]
    with pytest.raises(errors.Forbidden):
        authorize_command(principal("commands.run:s.many", "state.read:*", "state.write:a.*"), many, params)


def test_a_declared_key_param_left_empty_is_refused_not_skipped() -> None:
    optional = registry_with_state_commands().get("s.optional")
    assert optional is not None
    with pytest.raises(errors.Forbidden, match="names no state key"):
        authorize_command(principal("admin"), optional, KeyParams(key="x"))


def test_declaring_a_key_param_the_model_lacks_fails_at_registration() -> None:
    with pytest.raises(ValueError, match="not a declared param"):
        command("bad", description="", params=KeyParams, state_keys={"nope": ("read",)}, registry=CommandRegistry())(
            lambda p, c: None
        )


def test_system_state_keys_are_refused_to_every_caller_even_admin() -> None:
    admin = Principal("key:root", ("admin",))
    for key in ("system.command-stats", "system.anything"):
        assert not may(admin, "state.write", key)
        with pytest.raises(errors.Forbidden, match="written by cmdgate only"):
            authorize(admin, "state.write", key)
    assert may(admin, "state.read", "system.command-stats")  # reading the mirror is fine
    assert may(admin, "state.write", "systems.x") and may(admin, "state.write", "app.system.x")
