"""`aws.stepfunctions.start`: start an execution of the configured state machine; optionally wait for its end."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cmdgate.commands import CommandContext, CommandError, command
from cmdgate_commands.aws.calls import guarded
from cmdgate_commands.aws.targets import allowed_target

TIMEOUT_S = 25.0
DEADLINE_MARGIN_S = 1.0  # left to record the execution after the last poll
MAX_INPUT_BYTES = 32 * 1024
MAX_OUTPUT_CHARS = 64 * 1024
POLL_FIRST_S, POLL_MAX_S = 0.2, 2.0
ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})

# Replaced by tests.
sleep: Callable[[float], None] = time.sleep


class StartParams(BaseModel):
    """The execution's input, an optional name, and whether to wait for the end."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    state_machine_arn: str | None = Field(
        default=None, max_length=256, description="Must be the deployment's AwsPackStateMachineArn (the default)."
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The execution's JSON input (under 32 KB).")
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,80}$",
        description="The execution's name; default: the cmdgate execution id (a retried attempt finds its own).",
    )
    wait: bool = Field(default=False, description="Wait for the execution to end, within the command's timeout.")
    wait_s: float = Field(default=20.0, gt=0, le=TIMEOUT_S, description="How long to wait at most.")

    @field_validator("input")
    @classmethod
    def _input_fits(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, separators=(",", ":")).encode("utf-8")) > MAX_INPUT_BYTES:
            raise ValueError("input must be at most 32 KB as JSON")
        return value


def execution_name(execution_id: str) -> str:
    """A Step Functions execution name (1-80 of [A-Za-z0-9_-]) from a cmdgate execution id."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", execution_id)[:80] or "cmdgate"


@command(
    "aws.stepfunctions.start",
    description="Start an execution of the configured Step Functions state machine; with `wait`, answer its end.",
    params=StartParams,
    timeout_s=TIMEOUT_S,
    retry_safe=True,  # named after the cmdgate execution: a second attempt finds the first one's execution
)
def stepfunctions_start(params: StartParams, context: CommandContext) -> dict[str, Any]:
    """`{execution_arn, name, status, ...}`: RUNNING unless it ended within the wait."""
    services = context.services
    machine = allowed_target(
        services.settings.aws_pack_state_machine_arn, params.state_machine_arn, "AwsPackStateMachineArn"
    )
    client, store = services.aws_client("stepfunctions"), services.breaker_store()
    name = params.name or execution_name(context.execution_id)
    body = json.dumps(params.input, separators=(",", ":"), sort_keys=True)

    def start() -> str:
        try:
            return str(client.start_execution(stateMachineArn=machine, name=name, input=body)["executionArn"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
        # An earlier attempt of this execution started it (AWS answers so once it has ended, or when
        # the input differs): ours only if the input is the same.
        arn = machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"
        found = client.describe_execution(executionArn=arn)
        if json.loads(found.get("input") or "{}") != params.input:
            raise CommandError(
                f"An execution named {name!r} already exists with another input.",
                status=409,
                code="EXECUTION_NAME_TAKEN",
            )
        return arn

    arn = guarded("stepfunctions", store, start, repeatable=True)
    described = guarded("stepfunctions", store, lambda: client.describe_execution(executionArn=arn), repeatable=True)
    if params.wait:
        give_up = time.monotonic() + min(params.wait_s, context.remaining_s() - DEADLINE_MARGIN_S)
        pause = POLL_FIRST_S
        while described["status"] not in ENDED and time.monotonic() + pause < give_up:
            sleep(pause)
            pause = min(pause * 2, POLL_MAX_S)
            described = guarded(
                "stepfunctions", store, lambda: client.describe_execution(executionArn=arn), repeatable=True
            )
    return _view(arn, name, described, params.wait)


def _view(arn: str, name: str, described: dict[str, Any], waited: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"execution_arn": arn, "name": name, "status": described["status"]}
    if "startDate" in described:
        view["start_date"] = described["startDate"].isoformat()
    if described.get("stopDate"):
        view["stop_date"] = described["stopDate"].isoformat()
    output = described.get("output")
    if output is not None:
        try:
            view["output"] = json.loads(output) if len(output) <= MAX_OUTPUT_CHARS else None
        except ValueError:
            view["output"] = None
        view["output_truncated"] = len(output) > MAX_OUTPUT_CHARS
    for field in ("error", "cause"):
        if described.get(field):
            view[field] = str(described[field])[:1024]
    if waited:
        view["ended"] = described["status"] in ENDED
    return view
