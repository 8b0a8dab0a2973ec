"""`count`: adds one to a counter per execution, so tests can prove an effect happened once.

The effect is keyed by the execution id: one transaction writes a marker `count#<key>#<execution_id>`
(only if absent) and adds one to `count#<key>`, so however often an execution is attempted (a killed
worker, a redelivery), its counter moves once. It can also fail after counting - transiently for its
first `fail_attempts` attempts, or permanently - so a mix of outcomes still shows each effect once.
"""

from __future__ import annotations

import time

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, CommandError, TransientCommandError, command

MARKER_TTL_S = 14 * 86400  # longer than any SQS retention and redrive window


class CountParams(BaseModel):
    """Which counter to bump."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    key: str = Field(pattern=r"^[a-zA-Z0-9._:-]{1,128}$")
    hold_s: float = Field(default=0.0, ge=0, le=8, description="Stay running this long after counting.")
    fail_attempts: int = Field(default=0, ge=0, le=100, description="Fail transiently (after counting) this often.")
    fail_permanently: bool = Field(default=False, description="Fail permanently after counting.")


@command(
    "count",
    description="Increment counter `key` once per real execution (testing pack).",
    params=CountParams,
    idempotency="required",
    timeout_s=10,
    retry_safe=True,
)
def count(params: CountParams, context: CommandContext) -> dict[str, int]:
    """Add one to `count#<key>` in the control table unless this execution already did; returns the value."""
    services = context.services
    dynamodb, table = services.aws_client("dynamodb"), services.settings.control_table
    counter = {"pk": {"S": f"count#{params.key}"}}
    try:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            "pk": {"S": f"count#{params.key}#{context.execution_id}"},
                            "expires_at": {"N": str(int(time.time()) + MARKER_TTL_S)},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": table,
                        "Key": counter,
                        "UpdateExpression": "ADD executions :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
    except ClientError as error:
        reasons = error.response.get("CancellationReasons") or []
        already = bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"
        if error.response.get("Error", {}).get("Code") != "TransactionCanceledException" or not already:
            raise
    item = dynamodb.get_item(TableName=table, Key=counter, ConsistentRead=True).get("Item") or {}
    if params.hold_s:
        time.sleep(min(params.hold_s, context.remaining_s()))
    if context.attempt <= params.fail_attempts:
        raise TransientCommandError(f"transient failure after counting, attempt {context.attempt}")
    if params.fail_permanently:
        raise CommandError("permanent failure after counting", code="COMMAND_FAILED")
    return {"executions": int(item.get("executions", {}).get("N", "0"))}
