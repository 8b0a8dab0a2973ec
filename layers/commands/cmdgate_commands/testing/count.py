"""`count`: adds one to a counter per real execution, so tests can prove an effect happened once."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, command


class CountParams(BaseModel):
    """Which counter to bump."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-zA-Z0-9._:-]{1,128}$")
    hold_s: float = Field(default=0.0, ge=0, le=5, description="Stay running this long after counting.")


@command(
    "count",
    description="Increment counter `key` once per real execution (testing pack).",
    params=CountParams,
    idempotency="required",
    timeout_s=10,
)
def count(params: CountParams, context: CommandContext) -> dict[str, int]:
    """Atomically add one to `count#<key>` in the control table and return the new value."""
    services = context.services
    response = services.aws_client("dynamodb").update_item(
        TableName=services.settings.control_table,
        Key={"pk": {"S": f"count#{params.key}"}},
        UpdateExpression="ADD executions :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    if params.hold_s:
        time.sleep(min(params.hold_s, context.remaining_s()))
    return {"executions": int(response["Attributes"]["executions"]["N"])}
