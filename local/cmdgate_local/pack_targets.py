"""What the command packs reach on the local stack: a dispatch token, a state machine, a bus and a queue in moto.

Made only for template parameters left empty, so a deployment's own ARNs still win. moto runs
state machines only when its `execute_state_machine` config is set (otherwise executions stay
RUNNING): the local stack sets it, and the machine here is Pass states that end at once. Events
put on the bus are copied by a rule to an observer queue, so tests can read them back.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

DISPATCH_TOKEN_NAME = "cmdgate-local-github-dispatch-token"  # noqa: S105 - the secret's name
STATE_MACHINE_NAME = "cmdgate-local-pack-machine"
EVENT_BUS_NAME = "cmdgate-local-pack-bus"
EVENTS_OBSERVER_QUEUE = "cmdgate-local-pack-bus-observer"
QUEUE_NAME = "cmdgate-local-pack-queue"
LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/cmdgate-local-states"  # moto does not check roles
MACHINE_DEFINITION = {
    "Comment": "cmdgate local: answers its input with a greeting",
    "StartAt": "Greet",
    "States": {
        "Greet": {
            "Type": "Pass",
            "Result": {"greeting": "hello from the local state machine"},
            "ResultPath": "$.result",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def provision(session: Any, moto_url: str, parameters: dict[str, str]) -> None:
    """Fill each empty pack parameter in `parameters` with a resource made here."""
    httpx.post(f"{moto_url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    if not parameters.get("GitHubDispatchTokenSecretArn"):
        parameters["GitHubDispatchTokenSecretArn"] = session.client("secretsmanager").create_secret(
            Name=DISPATCH_TOKEN_NAME, SecretString="local-dispatch-token"
        )["ARN"]
    if not parameters.get("AwsPackStateMachineArn"):
        parameters["AwsPackStateMachineArn"] = session.client("stepfunctions").create_state_machine(
            name=STATE_MACHINE_NAME, definition=json.dumps(MACHINE_DEFINITION), roleArn=LOCAL_ROLE_ARN
        )["stateMachineArn"]
    sqs = session.client("sqs")
    if not parameters.get("AwsPackEventBusArn"):
        events = session.client("events")
        bus_arn = events.create_event_bus(Name=EVENT_BUS_NAME)["EventBusArn"]
        observer = sqs.create_queue(QueueName=EVENTS_OBSERVER_QUEUE)["QueueUrl"]
        observer_arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="observe-all", EventBusName=EVENT_BUS_NAME, EventPattern=json.dumps({"account": ["123456789012"]})
        )
        events.put_targets(
            Rule="observe-all", EventBusName=EVENT_BUS_NAME, Targets=[{"Id": "observer", "Arn": observer_arn}]
        )
        parameters["AwsPackEventBusArn"] = bus_arn
    if not parameters.get("AwsPackQueueArn"):
        url = sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        parameters["AwsPackQueueArn"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
