"""The aws pack against in-process moto (Step Functions run their definitions: execute_state_machine)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from cmdgate.breaker import BreakerStore, InMemoryBreakerStore
from cmdgate.commands import CommandContext, CommandError
from cmdgate.config import Settings
from cmdgate_commands.aws import put_events, sqs_send, stepfunctions_start
from cmdgate_commands.aws.eventbridge import PutEventsParams
from cmdgate_commands.aws.sqs import SendParams
from cmdgate_commands.aws.stepfunctions import StartParams, execution_name
from tests.unit.conftest import in_process_aws

DEFINITION = {
    "StartAt": "Greet",
    "States": {"Greet": {"Type": "Pass", "Result": {"ok": True}, "ResultPath": "$.result", "End": True}},
}
ROLE = "arn:aws:iam::123456789012:role/states"


class FakeServices:
    """Settings naming the pack's resources, real (moto) clients, an in-memory breaker store."""

    def __init__(self, machine: str = "", bus: str = "", queue: str = "") -> None:
        self.settings = Settings(
            aws_pack_state_machine_arn=machine, aws_pack_event_bus_arn=bus, aws_pack_queue_arn=queue
        )
        self.store = InMemoryBreakerStore()

    def aws_client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1")

    def breaker_store(self) -> BreakerStore:
        return self.store

    def secret(self, arn: str) -> str:
        raise AssertionError("the aws pack reads no secret")

    def state_service(self, remaining_s: Any = None) -> Any:
        raise AssertionError("the aws pack uses no state")


def context(services: FakeServices, execution_id: str = "0123abcd", attempt: int = 1) -> CommandContext:
    return CommandContext(execution_id, "principal-1", attempt, time.monotonic() + 25, services=services)


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A state machine, a bus with a rule copying every event to an observer queue, and a queue."""
    with in_process_aws(monkeypatch, tmp_path), mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        machine = boto3.client("stepfunctions").create_state_machine(
            name="m", definition=json.dumps(DEFINITION), roleArn=ROLE
        )["stateMachineArn"]
        sqs, events = boto3.client("sqs"), boto3.client("events")
        bus = events.create_event_bus(Name="bus")["EventBusArn"]
        observer = sqs.create_queue(QueueName="observer")["QueueUrl"]
        observer_arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name="all", EventBusName="bus", EventPattern=json.dumps({"account": ["123456789012"]}))
        events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "o", "Arn": observer_arn["QueueArn"]}])
        queue = sqs.create_queue(QueueName="work")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield {"machine": machine, "bus": bus, "observer": observer, "queue": queue, "queue_arn": queue_arn}


def services_for(resources: dict[str, str]) -> FakeServices:
    return FakeServices(resources["machine"], resources["bus"], resources["queue_arn"])


def test_start_with_wait_answers_the_executions_end_and_output(moto: dict[str, str]) -> None:
    result = stepfunctions_start(StartParams(input={"n": 1}, wait=True), context(services_for(moto)))
    assert result["status"] == "SUCCEEDED" and result["ended"] is True
    assert result["output"] == {"n": 1, "result": {"ok": True}}
    assert result["name"] == "0123abcd"  # named after the cmdgate execution
    assert result["execution_arn"].endswith(":execution:m:0123abcd")


def test_a_retried_attempt_finds_the_execution_it_started(moto: dict[str, str]) -> None:
    services = services_for(moto)
    first = stepfunctions_start(StartParams(input={"n": 1}), context(services, attempt=1))
    again = stepfunctions_start(StartParams(input={"n": 1}), context(services, attempt=2))
    assert again["execution_arn"] == first["execution_arn"]
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=moto["machine"])["executions"]
    assert len(executions) == 1


def test_the_same_name_with_another_input_is_a_conflict(moto: dict[str, str]) -> None:
    services = services_for(moto)
    stepfunctions_start(StartParams(input={"n": 1}, name="release-7"), context(services))
    with pytest.raises(CommandError) as refused:
        stepfunctions_start(StartParams(input={"n": 2}, name="release-7"), context(services, execution_id="other"))
    assert (refused.value.status, refused.value.code) == (409, "EXECUTION_NAME_TAKEN")


def test_only_the_configured_state_machine_may_be_started(moto: dict[str, str]) -> None:
    other = moto["machine"].replace(":m", ":other")
    with pytest.raises(CommandError) as refused:
        stepfunctions_start(StartParams(state_machine_arn=other), context(services_for(moto)))
    assert (refused.value.status, refused.value.code) == (403, "RESOURCE_NOT_ALLOWED")
    with pytest.raises(CommandError) as unconfigured:
        stepfunctions_start(StartParams(), context(FakeServices()))
    assert (unconfigured.value.status, unconfigured.value.code) == (503, "COMMAND_NOT_CONFIGURED")


def test_a_missing_state_machine_is_404_not_500(moto: dict[str, str]) -> None:
    services = FakeServices(moto["machine"].replace(":m", ":gone"))
    with pytest.raises(CommandError) as failed:
        stepfunctions_start(StartParams(), context(services))
    assert failed.value.status == 404 and failed.value.code == "UPSTREAM_NOT_FOUND"


def test_execution_names_fit_step_functions_rules() -> None:
    assert execution_name("abc:def/1") == "abc-def-1"
    assert len(execution_name("x" * 200)) == 80


def test_put_events_lands_on_the_bus(moto: dict[str, str]) -> None:
    params = PutEventsParams.model_validate(
        {"entries": [{"source": "cmdgate.deploy", "detail_type": "released", "detail": {"v": 7}}]}
    )
    result = put_events(params, context(services_for(moto)))
    assert result["event_bus_arn"] == moto["bus"] and len(result["event_ids"]) == 1
    body = json.loads(boto3.client("sqs").receive_message(QueueUrl=moto["observer"])["Messages"][0]["Body"])
    assert (body["id"], body["source"], body["detail"]) == (result["event_ids"][0], "cmdgate.deploy", {"v": 7})


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [{"source": "aws.ec2", "detail_type": "x"}],
        [{"source": "s", "detail_type": "x"}] * 11,
        [{"source": "s", "detail_type": "x", "resources": ["r" * 1601]}],
    ],
)
def test_events_eventbridge_would_refuse_are_refused_first(entries: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        PutEventsParams.model_validate({"entries": entries})


def test_sqs_send_lands_in_the_queue(moto: dict[str, str]) -> None:
    params = SendParams(body="hello", attributes={"kind": "greeting"})
    result = sqs_send(params, context(services_for(moto)))
    message = boto3.client("sqs").receive_message(QueueUrl=moto["queue"], MessageAttributeNames=["All"])["Messages"][0]
    assert message["MessageId"] == result["message_id"] and message["Body"] == "hello"
    assert message["MessageAttributes"]["kind"]["StringValue"] == "greeting"


def test_sqs_send_refuses_another_queue_and_a_group_id_on_a_standard_queue(moto: dict[str, str]) -> None:
    services = services_for(moto)
    with pytest.raises(CommandError) as other:
        sqs_send(SendParams(body="x", queue_arn=moto["queue_arn"] + "-2"), context(services))
    assert other.value.status == 403
    with pytest.raises(CommandError) as fifo_only:
        sqs_send(SendParams(body="x", group_id="g"), context(services))
    assert fifo_only.value.status == 422
    with pytest.raises(ValidationError):
        SendParams(body="x", attributes={"aws.trace": "no"})


def test_a_fifo_queue_needs_a_group_and_takes_no_delay(moto: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    services = FakeServices(queue=arn)
    for params in (SendParams(body="x"), SendParams(body="x", group_id="g", delay_s=5)):
        with pytest.raises(CommandError) as refused:
            sqs_send(params, context(services))
        assert (refused.value.status, refused.value.code) == (422, "INVALID_PARAMS")
    sqs_send(SendParams(body="x", group_id="g"), context(services, execution_id="run-1"))
    sqs_send(SendParams(body="x", group_id="g"), context(services, execution_id="run-1", attempt=2))
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1  # the second attempt was deduplicated by the cmdgate execution id
