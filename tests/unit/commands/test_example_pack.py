"""The example pack: its declaration, hooks, timeout and idempotency, run the way the runner runs commands."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from cmdgate.commands import CommandContext, CommandSpec, default_registry
from cmdgate.executions.runner import run_attempt
from cmdgate.idempotency import IdempotencyKeyMissing, require_key_if_needed
from cmdgate_commands.example import greet  # noqa: F401 - registers the pack's command


def spec() -> CommandSpec:
    found = default_registry.get("example.greet")
    assert found is not None, "importing the pack registers example.greet"
    return found


def context() -> CommandContext:
    return CommandContext("exec-1", "principal-1", 1, time.monotonic() + spec().timeout_s)


def test_the_declaration_carries_every_knob() -> None:
    described = spec().describe()
    assert described["permission"] == "commands.run:example.greet"
    assert described["idempotency"] == "required"
    assert described["timeout_s"] == 5 and described["retry_safe"] is True
    assert described["params_schema"]["properties"]["language"]["enum"] == ["en", "fr", "de"]


def test_a_run_greets_through_its_hooks() -> None:
    params = spec().parse_params({"name": "Ada", "language": "fr", "excited": True})
    outcome = run_attempt(spec(), params, context(), max_result_bytes=1024)
    assert outcome.ok and outcome.result == {"greeting": "Bonjour, Ada!", "language": "fr"}


def test_the_pre_hook_refuses_a_reserved_name_with_422() -> None:
    params = spec().parse_params({"name": "Admin"})
    outcome = run_attempt(spec(), params, context(), max_result_bytes=1024)
    assert not outcome.ok and (outcome.status, outcome.code) == (422, "NAME_RESERVED")


@pytest.mark.parametrize(
    "raw", [{}, {"name": ""}, {"name": "Ada", "language": "xx"}, {"name": "<script>"}, {"name": "Ada", "extra": 1}]
)
def test_bad_params_are_refused_before_anything_runs(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        spec().parse_params(raw)


def test_a_caller_without_an_idempotency_key_is_refused() -> None:
    with pytest.raises(IdempotencyKeyMissing):
        require_key_if_needed(None, spec().idempotency, spec().name)
    require_key_if_needed("greet-ada-1", spec().idempotency, spec().name)
