"""The execution lifecycle on the local stack: a killed worker runtime, cancel, long polls, and poison
messages (acknowledged and alerted). Retries with the template's own timers: test_execution_retries.py."""

from __future__ import annotations

import functools
import json
import os
import signal
import time
import uuid
from datetime import datetime
from typing import Any

import boto3
import pytest

from cmdgate_local.processes import runtime_pid
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.integration
ASYNC = {"Prefer": "respond-async"}


def execution(stack: Stack, execution_id: str) -> dict[str, Any]:
    body: dict[str, Any] = stack.admin.get(f"/v1/executions/{execution_id}").json()
    return body


def ended(stack: Stack, execution_id: str, status: str, timeout_s: float) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        answer = stack.admin.get(f"/v1/executions/{execution_id}")
        if answer.status_code != 200:  # a local gateway hiccup under load (a cold start past its init timeout)
            return None
        body: dict[str, Any] = answer.json()
        return body if body["status"] == status else None

    found: dict[str, Any] = wait_for(reached, timeout_s=timeout_s)
    return found


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@functools.cache
def _dynamodb(moto_url: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=moto_url)


def counter(stack: Stack, key: str) -> int:
    item = _dynamodb(stack.state["moto_url"]).get_item(
        TableName=stack.resource("ControlTable"), Key={"pk": {"S": f"count#{key}"}}, ConsistentRead=True
    )
    return int(item.get("Item", {}).get("executions", {}).get("N", "0"))


# -- a killed worker runtime -------------------------------------------------------------------------


def runtime_holding(stack: Stack, execution_id: str) -> int | None:
    """The pid of this stack's worker runtime (`python -m awslambdaric`) holding the execution's lease.

    The record names the holder by its log stream (`local/<index>` here); that environment's emulator
    writes to `WorkerFunction-<index>.log`, and the runtime is the emulator's child.
    """
    item = _dynamodb(stack.state["moto_url"]).get_item(
        TableName=stack.resource("ExecutionsTable"), Key={"execution_id": {"S": execution_id}}, ConsistentRead=True
    )
    holder = item.get("Item", {}).get("lease_holder", {}).get("S", "")
    if not holder.startswith("local/"):
        return None
    log = stack.log_dir / f"WorkerFunction-{holder.split('/', 1)[1]}.log"
    return runtime_pid(int(stack.state["pid"]), log)


def test_a_killed_worker_runtime_leads_to_a_retry_and_one_count_effect(stack: Stack) -> None:
    key = f"kill-{uuid.uuid4().hex[:8]}"
    queued = stack.admin.post(
        "/v1/commands/count",
        json={"key": key, "hold_s": 8},
        headers={**ASYNC, "Idempotency-Key": key},
    )
    execution_id = queued.json()["execution_id"]
    wait_for(lambda: counter(stack, key) == 1, timeout_s=30, interval_s=0.05)  # counted, and now holding
    runtime = wait_for(lambda: runtime_holding(stack, execution_id), timeout_s=10)
    os.kill(runtime, signal.SIGKILL)  # a process this test's stack started
    started = time.monotonic()
    assert execution(stack, execution_id)["status"] == "running"  # killed mid-command
    done = ended(stack, execution_id, "succeeded", timeout_s=60)
    print(f"\nrecovered {time.monotonic() - started:.1f} s after the kill")
    assert done["attempts"] == 2
    assert done["result"] == {"executions": 1}
    assert counter(stack, key) == 1


# -- cancel and long polls ----------------------------------------------------------------------------


def queued_without_message(stack: Stack, command: str, params: dict[str, Any]) -> str:
    """An admin's queued execution whose message is not sent yet (so it certainly is still queued)."""
    from cmdgate.executions.model import Execution, utc_now_iso

    sample = stack.admin.post("/v1/commands/echo", json={}).json()["execution_id"]
    table = (
        boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        .resource("dynamodb", endpoint_url=stack.state["moto_url"])
        .Table(stack.resource("ExecutionsTable"))
    )
    owner = Execution.from_item(table.get_item(Key={"execution_id": sample}, ConsistentRead=True)["Item"])
    execution_id = uuid.uuid4().hex
    record = Execution(
        execution_id=execution_id,
        command=command,
        principal_id=owner.principal_id,
        permissions=owner.permissions,
        mode="async",
        status="queued",
        params=params,
        created_at=utc_now_iso(),
        expires_at=int(time.time()) + 3600,
        next_attempt_at=int(time.time()),
        retry_safe=True,
    )
    table.put_item(Item=record.to_item())
    return execution_id


def test_cancel_of_a_queued_execution_means_it_never_runs(stack: Stack) -> None:
    key = f"cancel-{uuid.uuid4().hex[:8]}"
    execution_id = queued_without_message(stack, "count", {"key": key})
    answer = stack.admin.post(f"/v1/executions/{execution_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["cancel_requested"]) == ("cancelled", True)
    # Its message arrives and is acknowledged without a run.
    sqs, queue = stack.aws("sqs"), stack.resource("ExecutionsQueue")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"execution_id": execution_id}))

    def queue_empty() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        return all(attributes.get(name) == "0" for name in (*counts, "ApproximateNumberOfMessagesDelayed"))

    wait_for(queue_empty, timeout_s=30)
    assert counter(stack, key) == 0
    done = execution(stack, execution_id)
    assert (done["status"], done["attempts"]) == ("cancelled", 0)
    refused = stack.admin.post(
        f"/v1/executions/{stack.admin.post('/v1/commands/echo', json={}).json()['execution_id']}/cancel"
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "EXECUTION_FINISHED")


def test_cancel_of_a_running_execution_ends_it_cancelled(stack: Stack) -> None:
    queued = stack.admin.post("/v1/commands/sleep", json={"seconds": 2.8}, headers=ASYNC)
    execution_id = queued.json()["execution_id"]
    ended(stack, execution_id, "running", timeout_s=30)
    answer = stack.admin.post(f"/v1/executions/{execution_id}/cancel")
    assert (answer.status_code, answer.json().get("cancel_requested")) == (200, True), answer.text
    done = ended(stack, execution_id, "cancelled", timeout_s=30)
    assert done["error"]["code"] == "EXECUTION_CANCELLED"
    assert done["attempts"] == 1


def test_cancel_needs_the_access_reading_needs(stack: Stack) -> None:
    owner = stack.client(stack.create_key(["commands.run:sleep"]))
    other = stack.client(stack.create_key(["commands.run:sleep"]))
    execution_id = owner.post("/v1/commands/sleep", json={"seconds": 0}).json()["execution_id"]
    refused = other.post(f"/v1/executions/{execution_id}/cancel")
    assert (refused.status_code, refused.json()["code"]) == (404, "EXECUTION_NOT_FOUND")
    finished = owner.post(f"/v1/executions/{execution_id}/cancel")  # through the authorizer's policy
    assert (finished.status_code, finished.json()["code"]) == (409, "EXECUTION_FINISHED")


def test_wait_returns_as_soon_as_the_execution_ends(stack: Stack) -> None:
    queued = stack.admin.post("/v1/commands/sleep", json={"seconds": 2}, headers=ASYNC)
    execution_id = queued.json()["execution_id"]
    asked = time.time()
    answer = stack.admin.get(f"/v1/executions/{execution_id}", params={"wait": 15})
    answered = time.time()
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["status"] == "succeeded"
    lag_s = answered - epoch(done["finished_at"])
    print(f"\n?wait= answered {lag_s:.2f} s after the execution ended ({answered - asked:.1f} s held)")
    assert answered - asked < 15
    assert lag_s < 1.5
    short = stack.admin.get(f"/v1/executions/{execution_id}", params={"wait": "21"})
    assert (short.status_code, short.json()["code"]) == (400, "BAD_REQUEST")


# -- poison messages ----------------------------------------------------------------------------------


def test_a_message_without_a_record_is_acknowledged_and_alerted(stack: Stack) -> None:
    sqs, sns = stack.aws("sqs"), stack.aws("sns")
    inbox = sqs.create_queue(QueueName=f"alerts-inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.resource("AlertsTopic"), Protocol="sqs", Endpoint=inbox_arn)
    missing = uuid.uuid4().hex
    sqs.send_message(QueueUrl=stack.resource("ExecutionsQueue"), MessageBody=json.dumps({"execution_id": missing}))

    def alert() -> dict[str, Any] | None:
        for message in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            body = json.loads(json.loads(message["Body"])["Message"])
            if body.get("subject_id") == missing:
                return dict(body)
        return None

    found = wait_for(alert, timeout_s=30)
    assert found["alert"] == "poison_message"
    assert found["runbook"] == "docs/runbooks/poison_message.md"
    dlq = sqs.receive_message(QueueUrl=stack.resource("ExecutionsDLQ"), MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert not any(missing in m["Body"] for m in dlq.get("Messages", []))


def test_a_killed_worker_runtime_mid_state_command_leads_to_a_retry_and_one_increment(stack: Stack) -> None:
    from cmdgate.locks import DynamoDBLockStore, LockManager
    from cmdgate.state.store import lease_name

    key = f"killstate.{uuid.uuid4().hex[:8]}"
    assert stack.admin.put(f"/v1/state/{key}", json=0, headers={"If-None-Match": "*"}).status_code == 201
    # A lease on the key holds the command mid-run (its write waits for the lease) until it is killed.
    locks = LockManager(DynamoDBLockStore(stack.aws("dynamodb"), stack.resource("ControlTable")))
    lease = locks.acquire(lease_name(key), "kill-test", 8.0)
    queued = stack.admin.post("/v1/commands/counter.increment", json={"key": key}, headers=ASYNC)
    assert queued.status_code == 202, queued.text
    execution_id = queued.json()["execution_id"]
    runtime = wait_for(lambda: runtime_holding(stack, execution_id), timeout_s=20, interval_s=0.05)
    os.kill(runtime, signal.SIGKILL)  # a process this test's stack started
    started = time.monotonic()
    assert execution(stack, execution_id)["status"] == "running"  # killed mid-command
    locks.release(lease)
    done = ended(stack, execution_id, "succeeded", timeout_s=60)
    print(f"\nstate command recovered {time.monotonic() - started:.1f} s after the kill")
    assert done["attempts"] == 2
    assert done["result"]["value"] == 1
    read = stack.admin.get(f"/v1/state/{key}")
    assert read.json() == 1 and read.headers["state-version"] == "2"  # one increment on top of the put
