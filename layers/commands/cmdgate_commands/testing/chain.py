"""`chain`: records its step once per execution, and follows itself with the next step (testing pack).

The follow-up (`on_success`) takes its params from the finished run's result, so a chain runs
step 0, 1, 2, ... until the follow-up depth limit (`FollowUpMaxDepth`) ends it.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, FollowUp, command


class ChainParams(BaseModel):
    """Which chain, and which step of it."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    key: str = Field(pattern=r"^[a-zA-Z0-9._:-]{1,128}$")
    step: int = Field(default=0, ge=0, le=1000)


def next_step(view: dict[str, Any]) -> dict[str, Any]:
    result = view["result"]
    return {"key": result["key"], "step": result["step"] + 1}


@command(
    "chain",
    description="Append `step` to chain `key` once per execution, then follow with step + 1 (testing pack).",
    params=ChainParams,
    modes=("async",),
    timeout_s=10,
    on_success=FollowUp("chain", next_step),
)
def chain(params: ChainParams, context: CommandContext) -> dict[str, Any]:
    """Append the step to `chain#<key>`'s `steps`, unless this execution already did."""
    services = context.services
    try:
        services.aws_client("dynamodb").update_item(
            TableName=services.settings.control_table,
            Key={"pk": {"S": f"chain#{params.key}"}},
            UpdateExpression="SET steps = list_append(if_not_exists(steps, :empty), :step) ADD runs :run",
            ConditionExpression="attribute_not_exists(runs) OR NOT contains(runs, :id)",
            ExpressionAttributeValues={
                ":empty": {"L": []},
                ":step": {"L": [{"N": str(params.step)}]},
                ":run": {"SS": [context.execution_id]},
                ":id": {"S": context.execution_id},
            },
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
    return {"key": params.key, "step": params.step}
