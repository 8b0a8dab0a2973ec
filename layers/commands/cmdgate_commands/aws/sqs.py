"""`aws.sqs.send`: send one message to the configured SQS queue."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cmdgate.commands import CommandContext, CommandError, command
from cmdgate_commands.aws.calls import guarded
from cmdgate_commands.aws.targets import allowed_target, queue_name_and_account


class SendParams(BaseModel):
    """The message body and string attributes; a FIFO queue needs a group id."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    queue_arn: str | None = Field(default=None, max_length=256, description="Must be the deployment's AwsPackQueueArn.")
    body: str = Field(min_length=1, max_length=60 * 1024)
    attributes: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,255}$")], str] = Field(
        default_factory=dict, max_length=10, description="String message attributes (names not aws.* / amazon.*)."
    )
    delay_s: int = Field(default=0, ge=0, le=900)
    group_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9!-/:-@\[-`{-~]{1,128}$")

    @field_validator("attributes")
    @classmethod
    def _not_reserved(cls, attributes: dict[str, str]) -> dict[str, str]:
        if any(name.lower().startswith(("aws.", "amazon.")) for name in attributes):
            raise ValueError("attribute names starting with aws. or amazon. are reserved")
        return attributes


@lru_cache(maxsize=8)
def _queue_url(client: Any, name: str, account: str) -> str:
    return str(client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


@command(
    "aws.sqs.send",
    description="Send one message to the configured SQS queue; answers its message id.",
    params=SendParams,
    timeout_s=15,
)
def sqs_send(params: SendParams, context: CommandContext) -> dict[str, Any]:
    """`{queue_arn, message_id}`; a FIFO message is deduplicated by the cmdgate execution id."""
    services = context.services
    arn = allowed_target(services.settings.aws_pack_queue_arn, params.queue_arn, "AwsPackQueueArn")
    name, account = queue_name_and_account(arn)
    fifo = name.endswith(".fifo")
    if fifo != (params.group_id is not None):
        detail = "a FIFO queue needs group_id" if fifo else "group_id is for FIFO queues only"
        raise CommandError(detail, status=422, code="INVALID_PARAMS")
    if fifo and params.delay_s:
        raise CommandError("a FIFO queue takes no per-message delay_s", status=422, code="INVALID_PARAMS")
    client, store = services.aws_client("sqs"), services.breaker_store()
    url = guarded("sqs", store, lambda: _queue_url(client, name, account), repeatable=True)
    request: dict[str, Any] = {
        "QueueUrl": url,
        "MessageBody": params.body,
        "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in params.attributes.items()},
    }
    if fifo:
        request.update(MessageGroupId=params.group_id, MessageDeduplicationId=context.execution_id)
    if params.delay_s:
        request["DelaySeconds"] = params.delay_s
    answer = guarded("sqs", store, lambda: client.send_message(**request))
    return {"queue_arn": arn, "message_id": answer["MessageId"]}
