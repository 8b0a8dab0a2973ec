"""The github and aws packs end to end: API -> Lambda -> the GitHub stand-in / moto, read back from there.

The breaker test runs last in this module: it leaves the GitHub API host's breaker open for its
open time, and the stand-in's fault is narrowed to dispatch paths, so the state sync is unaffected.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from cmdgate_commands.github.breakers import BREAKER_CONFIG
from cmdgate_local.pack_targets import EVENTS_OBSERVER_QUEUE, QUEUE_NAME
from tests.integration.conftest import Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


def gist_admin(stack: Stack, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{stack.state['gist_url']}/_admin/{path}"
    answer = httpx.post(url, json=body, timeout=10) if body is not None else httpx.get(url, timeout=10)
    answer.raise_for_status()
    return answer.json()


def dispatches(stack: Stack) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = gist_admin(stack, "stats")["dispatches"]
    return recorded


def run(stack: Stack, name: str, params: dict[str, Any]) -> httpx.Response:
    return stack.admin.post(f"/v1/commands/{name}", json=params)


def test_workflow_dispatch_reaches_the_github_stand_in(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    params = {"owner": "octo", "repo": "app", "workflow": "deploy.yml", "ref": "main", "inputs": {"tag": tag}}
    response = run(stack, "github.workflow_dispatch", params)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["dispatched"] is True
    [recorded] = [d for d in dispatches(stack) if d["inputs"].get("tag") == tag]
    assert (recorded["owner"], recorded["repo"], recorded["workflow_id"], recorded["ref"]) == (
        "octo",
        "app",
        "deploy.yml",
        "main",
    )


def test_repository_dispatch_reaches_the_github_stand_in(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    params = {"owner": "octo", "repo": "app", "event_type": "deploy", "client_payload": {"tag": tag}}
    response = run(stack, "github.repository_dispatch", params)
    assert response.status_code == 200, response.text
    assert [d["event_type"] for d in dispatches(stack) if d["client_payload"].get("tag") == tag] == ["deploy"]


HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("github.workflow_dispatch", {"owner": "octo", "repo": "..", "workflow": "x.yml", "ref": "main"}),
    ("github.workflow_dispatch", {"owner": "octo", "repo": "app", "workflow": "../../x.yml", "ref": "main"}),
    ("github.repository_dispatch", {"owner": "octo", "repo": "app", "event_type": "x" * 101}),
    ("github.repository_dispatch", {}),
    ("aws.stepfunctions.start", {"input": [], "wait": "yes"}),
    ("aws.eventbridge.put_events", {"entries": [{"source": "aws.ec2", "detail_type": "x"}]}),
    ("aws.sqs.send", {"body": ""}),
    ("aws.sqs.send", {"body": "x", "attributes": {"aws.trace": "x"}, "unknown": 1}),
]


def test_hostile_params_are_a_422_problem_and_reach_nothing(stack: Stack) -> None:
    before = len(dispatches(stack))
    for name, params in HOSTILE:
        assert_problem(run(stack, name, params), 422, "VALIDATION_FAILED")
    assert len(dispatches(stack)) == before


def test_stepfunctions_start_with_wait_answers_the_executions_end(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    response = run(stack, "aws.stepfunctions.start", {"input": {"tag": tag}, "wait": True, "wait_s": 10})
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["status"] == "SUCCEEDED" and result["ended"] is True
    assert result["output"]["tag"] == tag
    assert result["output"]["result"] == {"greeting": "hello from the local state machine"}
    described = stack.aws("stepfunctions").describe_execution(executionArn=result["execution_arn"])
    assert described["status"] == "SUCCEEDED"
    assert result["name"] == response.json()["execution_id"]  # named after the cmdgate execution


def test_stepfunctions_start_runs_async_in_the_worker(stack: Stack) -> None:
    queued = stack.admin.post(
        "/v1/commands/aws.stepfunctions.start", json={"input": {"n": 1}}, headers={"Prefer": "respond-async"}
    )
    assert queued.status_code == 202, queued.text
    execution = f"/v1/executions/{queued.json()['execution_id']}"
    done = wait_for(lambda: (r := stack.admin.get(execution).json())["status"] == "succeeded" and r, timeout_s=60)
    arn = done["result"]["execution_arn"]
    assert done["result"]["name"] == queued.json()["execution_id"]
    states = stack.aws("stepfunctions")
    wait_for(lambda: states.describe_execution(executionArn=arn)["status"] == "SUCCEEDED", timeout_s=10)


def test_another_state_machine_is_refused_with_403(stack: Stack) -> None:
    other = stack.state["parameters"]["AwsPackStateMachineArn"] + "-other"
    assert_problem(run(stack, "aws.stepfunctions.start", {"state_machine_arn": other}), 403, "RESOURCE_NOT_ALLOWED")


def test_put_events_land_on_the_bus(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    entries = [{"source": "cmdgate.test", "detail_type": "released", "detail": {"tag": tag}}]
    response = run(stack, "aws.eventbridge.put_events", {"entries": entries})
    assert response.status_code == 200, response.text
    [event_id] = response.json()["result"]["event_ids"]
    sqs = stack.aws("sqs")
    observer = sqs.get_queue_url(QueueName=EVENTS_OBSERVER_QUEUE)["QueueUrl"]

    def landed() -> dict[str, Any] | None:
        for message in sqs.receive_message(QueueUrl=observer, MaxNumberOfMessages=10).get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"].get("tag") == tag:
                return dict(event)
        return None

    event = wait_for(landed, timeout_s=10)
    assert (event["id"], event["source"], event["detail-type"]) == (event_id, "cmdgate.test", "released")


def test_sqs_send_lands_in_the_queue(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    response = run(stack, "aws.sqs.send", {"body": tag, "attributes": {"kind": "test"}})
    assert response.status_code == 200, response.text
    sqs = stack.aws("sqs")
    queue = sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"]

    def landed() -> dict[str, Any] | None:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        return next((dict(m) for m in messages.get("Messages", []) if m["Body"] == tag), None)

    message = wait_for(landed, timeout_s=10)
    assert message["MessageId"] == response.json()["result"]["message_id"]
    assert message["MessageAttributes"]["kind"]["StringValue"] == "test"


def test_zz_the_github_breaker_opens_under_the_stand_ins_5xx(stack: Stack) -> None:
    params = {"owner": "octo", "repo": "app", "workflow": "deploy.yml", "ref": "main"}
    gist_admin(stack, "faults", {"mode": "502", "path_prefix": "/repos/"})
    try:
        answers = []
        # Each api environment flushes its counts to the shared breaker record at most once per
        # refresh_s (1 s), so how many calls it takes depends on their speed: poll, bounded in time.
        deadline = time.monotonic() + 30
        while True:
            response = run(stack, "github.workflow_dispatch", params)
            answers.append(response.status_code)
            if response.status_code == 503 or time.monotonic() > deadline:
                break
            assert_problem(response, 502, "UPSTREAM_ERROR")  # a clear error, never a 500
            time.sleep(0.2)
        problem = assert_problem(response, 503, "DEPENDENCY_UNAVAILABLE")
        assert int(response.headers["retry-after"]) >= 1, answers
        assert "GitHub" in problem["detail"]
        # Open: once every api environment has re-read the shared record (each does within
        # refresh_s), calls are refused without asking GitHub.
        time.sleep(BREAKER_CONFIG.refresh_s + 0.5)
        injected = gist_admin(stack, "stats")["faults_injected"]
        for _ in range(3):
            assert_problem(run(stack, "github.workflow_dispatch", params), 503, "DEPENDENCY_UNAVAILABLE")
        assert gist_admin(stack, "stats")["faults_injected"] == injected
    finally:
        gist_admin(stack, "faults", {"mode": "none"})
