"""`aws.eventbridge.put_events`: put 1-10 events on the configured EventBridge bus."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cmdgate.commands import CommandContext, CommandError, command
from cmdgate_commands.aws.calls import guarded
from cmdgate_commands.aws.targets import allowed_target

MAX_DETAIL_BYTES = 32 * 1024


class Event(BaseModel):
    """One event: its source (not `aws.*`), detail type and JSON detail."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    source: str = Field(pattern=r"^[A-Za-z0-9._/-]{1,256}$", description="Not starting with `aws.` (AWS's own).")
    detail_type: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
    detail: dict[str, Any] = Field(default_factory=dict)
    resources: list[Annotated[str, Field(min_length=1, max_length=1600)]] = Field(default_factory=list, max_length=10)

    @field_validator("source")
    @classmethod
    def _not_aws(cls, value: str) -> str:
        if value.lower().startswith("aws."):
            raise ValueError("sources starting with aws. are AWS's own")
        return value

    @field_validator("detail")
    @classmethod
    def _detail_fits(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, separators=(",", ":")).encode("utf-8")) > MAX_DETAIL_BYTES:
            raise ValueError("detail must be at most 32 KB as JSON")
        return value


class PutEventsParams(BaseModel):
    """The events, and optionally the bus (the deployment's AwsPackEventBusArn)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    event_bus_arn: str | None = Field(default=None, max_length=256)
    entries: list[Event] = Field(min_length=1, max_length=10)


@command(
    "aws.eventbridge.put_events",
    description="Put 1-10 events on the configured EventBridge bus; answers each entry's event id.",
    params=PutEventsParams,
    timeout_s=15,
)
def put_events(params: PutEventsParams, context: CommandContext) -> dict[str, Any]:
    """`{event_bus_arn, event_ids}`; an entry EventBridge refused fails the run with its error code."""
    services = context.services
    bus = allowed_target(services.settings.aws_pack_event_bus_arn, params.event_bus_arn, "AwsPackEventBusArn")
    client = services.aws_client("events")
    entries = [
        {
            "Source": event.source,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, separators=(",", ":")),
            "Resources": event.resources,
            "EventBusName": bus,
        }
        for event in params.entries
    ]
    answer = guarded("events", services.breaker_store(), lambda: client.put_events(Entries=entries))
    results = answer.get("Entries", [])
    if answer.get("FailedEntryCount"):
        failed = [
            {"index": i, "code": r.get("ErrorCode"), "message": str(r.get("ErrorMessage", ""))[:200]}
            for i, r in enumerate(results)
            if r.get("ErrorCode")
        ]
        raise CommandError(
            f"EventBridge refused {len(failed)} of {len(entries)} events: {json.dumps(failed)[:600]}",
            status=502,
            code="UPSTREAM_REJECTED",
        )
    return {"event_bus_arn": bus, "event_ids": [r.get("EventId") for r in results]}
