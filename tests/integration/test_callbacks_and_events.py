"""Signed completion callbacks, follow-up chains and command statistics, against the local stack.

The callback receiver is a real HTTP server on loopback (127.0.0.1 is in the test stack's
HttpRequestAllowedHosts); it verifies every delivery's Standard Webhooks signature itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cmdgate.executions.service import follow_up_id
from tests.integration.conftest import FOLLOW_UP_MAX_DEPTH, Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers `/fail-<n>/...` with 500 for the first n requests of that path, `/silent/...` never in time."""

    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                failures = int(self.path.split("/")[1].removeprefix("fail-")) if self.path.startswith("/fail-") else 0
                status = 500 if len([d for d in state.deliveries if d.path == self.path]) < failures else 204
                state.deliveries.append(Delivery(self.path, headers, body, status))  # seen on arrival
            if self.path.startswith("/silent/"):
                time.sleep(2.5)  # past the stack's CallbackTimeoutS=1: the sender gave up
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


def verify(delivery: Delivery, secret: str) -> bool:
    """The Standard Webhooks check a receiver makes: any `v1,` entry matches HMAC(id.timestamp.body)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery.headers['webhook-id']}.{delivery.headers['webhook-timestamp']}.".encode() + delivery.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    entries = delivery.headers["webhook-signature"].split(" ")
    return any(hmac.compare_digest(entry.removeprefix("v1,"), expected) for entry in entries)


def caller_with_secret(stack: Stack, permissions: list[str]) -> tuple[Any, str, str]:
    """A new key's client, its principal id, and a fresh signing secret for it."""
    key, record = stack.key_store().create("callbacks", permissions, {"quota": 1000, "window_s": 60})
    principal_id = f"key:{record.key_id}"
    created = stack.admin.post("/v1/admin/signing-secrets", json={"principal_id": principal_id})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    return stack.client(str(key)), principal_id, created.json()["secret"]


def execution(stack: Stack, execution_id: str) -> dict[str, Any]:
    body: dict[str, Any] = stack.admin.get(f"/v1/executions/{execution_id}").json()
    return body


def callback_status(stack: Stack, execution_id: str) -> str | None:
    callback = execution(stack, execution_id).get("callback") or {}
    return callback.get("status")


def test_a_failing_receiver_gets_the_same_signed_delivery_until_it_acknowledges_one(
    stack: Stack, receiver: Receiver
) -> None:
    client, principal_id, old_secret = caller_with_secret(stack, ["commands.run:echo"])
    # A rotation: the new secret and the old one (still in its grace period) both sign.
    rotated = stack.admin.post("/v1/admin/signing-secrets", json={"principal_id": principal_id, "grace_s": 600})
    new_secret = rotated.json()["secret"]
    assert rotated.json()["previous_valid_until"] and new_secret != old_secret
    path = f"/fail-2/{uuid.uuid4().hex}"
    started = client.post(
        "/v1/commands/echo",
        json={"message": "signed"},
        headers={"Prefer": "respond-async", "Callback-Url": receiver.url(path)},
    )
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]

    # Generous: the first async run of a session pays the worker's and event processor's cold starts.
    done = wait_for(
        lambda: callback_status(stack, execution_id) == "delivered" and execution(stack, execution_id), timeout_s=60
    )
    assert done["callback"]["attempts"] == 3
    deliveries = receiver.of(path)
    assert [d.answered for d in deliveries] == [500, 500, 204]  # exactly one acknowledged
    assert {d.headers["webhook-id"] for d in deliveries} == {f"msg_{execution_id}"}
    for delivery in deliveries:
        assert verify(delivery, new_secret) and verify(delivery, old_secret)
        assert len(delivery.headers["webhook-signature"].split(" ")) == 2
        assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 120
        body = json.loads(delivery.body)
        assert (body["execution_id"], body["status"], body["result"]) == (
            execution_id,
            "succeeded",
            {"message": "signed"},
        )
    forged = Delivery(path, {**deliveries[0].headers}, deliveries[0].body + b" ", 0)
    assert not verify(forged, new_secret)  # the check above can fail
    # The owner sees the delivery in the execution's view.
    assert client.get(f"/v1/executions/{execution_id}").json()["callback"]["status"] == "delivered"


def test_a_receiver_that_never_answers_is_abandoned_and_alerted(stack: Stack, receiver: Receiver) -> None:
    sqs, sns = stack.aws("sqs"), stack.aws("sns")
    alerts = sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.resource("AlertsTopic"),
        Protocol="sqs",
        Endpoint=alerts_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    client, _, _ = caller_with_secret(stack, ["commands.run:echo"])
    path = f"/silent/{uuid.uuid4().hex}"
    started = client.post("/v1/commands/echo", json={}, headers={"Callback-Url": receiver.url(path)})
    assert started.status_code == 200, started.text  # a sync run calls back too
    execution_id = started.json()["execution_id"]

    done = wait_for(
        lambda: callback_status(stack, execution_id) == "abandoned" and execution(stack, execution_id), timeout_s=45
    )
    assert done["callback"]["attempts"] == 3 and done["callback"]["last_error"] == "timeout"

    def alerted() -> dict[str, Any] | None:
        for message in sqs.receive_message(QueueUrl=alerts, MaxNumberOfMessages=10).get("Messages", []):
            alert = json.loads(message["Body"])
            if alert.get("subject_id") == execution_id:
                return dict(alert)
        return None

    alert = wait_for(alerted)
    assert alert["alert"] == "callback_abandoned"
    assert alert["runbook"] == "docs/runbooks/callback_abandoned.md" and "3 attempt" in alert["cause"]
    assert len(receiver.of(path)) == 3


def test_a_callback_needs_a_signing_secret_and_secrets_need_admin(stack: Stack, receiver: Receiver) -> None:
    client = stack.client(stack.create_key(["commands.run:echo"]))
    refused = client.post("/v1/commands/echo", json={}, headers={"Callback-Url": receiver.url("/fail-0/x")})
    assert_problem(refused, 409, "SIGNING_SECRET_MISSING")
    assert_problem(client.post("/v1/admin/signing-secrets", json={"principal_id": "key:x"}), 403, "FORBIDDEN")
    for body in ({}, {"principal_id": ""}, {"principal_id": "a b"}, {"principal_id": "p", "grace_s": "5"}):
        assert_problem(stack.admin.post("/v1/admin/signing-secrets", json=body), 422, "VALIDATION_FAILED")


def test_system_state_keys_are_written_by_cmdgate_only(stack: Stack) -> None:
    response = stack.admin.put("/v1/state/system.command-stats", json={"forged": True}, headers={"If-None-Match": "*"})
    assert_problem(response, 403, "FORBIDDEN")
    assert_problem(stack.admin.delete("/v1/state/system.x", headers={"If-Match": "*"}), 403, "FORBIDDEN")


def chain_steps(stack: Stack, key: str) -> list[int]:
    item = (
        stack.aws("dynamodb")
        .get_item(TableName=stack.resource("ControlTable"), Key={"pk": {"S": f"chain#{key}"}}, ConsistentRead=True)
        .get("Item")
    )
    return [int(v["N"]) for v in item["steps"]["L"]] if item else []


def event_counted(stack: Stack, execution_id: str) -> bool:
    """The event processor finished this execution's event (its stats marker is written last)."""
    item = (
        stack.aws("dynamodb")
        .get_item(TableName=stack.resource("ControlTable"), Key={"pk": {"S": f"event#{execution_id}#succeeded"}})
        .get("Item")
    )
    return item is not None


def events_queue_drained(stack: Stack) -> bool:
    attributes = stack.aws("sqs").get_queue_attributes(
        QueueUrl=stack.resource("EventsQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0
    )


def test_a_follow_up_chain_runs_in_order_stops_at_the_depth_limit_and_ignores_a_duplicate_event(
    stack: Stack,
) -> None:
    client = stack.client(stack.create_key(["commands.run:chain"]))
    key = uuid.uuid4().hex[:12]
    started = client.post("/v1/commands/chain", json={"key": key}, headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.text
    ids = [started.json()["execution_id"]]
    for _ in range(FOLLOW_UP_MAX_DEPTH + 1):
        ids.append(follow_up_id(ids[-1], "s0", "chain"))
    last = ids[FOLLOW_UP_MAX_DEPTH]
    wait_for(lambda: event_counted(stack, last), timeout_s=45)
    assert chain_steps(stack, key) == list(range(FOLLOW_UP_MAX_DEPTH + 1))
    for depth, execution_id in enumerate(ids[1 : FOLLOW_UP_MAX_DEPTH + 1], start=1):
        view = client.get(f"/v1/executions/{execution_id}").json()  # the caller owns its follow-ups
        assert (view["status"], view["chain_depth"], view["parent_execution_id"]) == (
            "succeeded",
            depth,
            ids[depth - 1],
        )
    assert_problem(stack.admin.get(f"/v1/executions/{ids[-1]}"), 404, "EXECUTION_NOT_FOUND")  # the limit held

    # The first run's event again, as a redelivery would bring it: its follow-up is not queued twice.
    first = execution(stack, ids[0])
    duplicate = {
        "type": "command.executed",
        "execution_id": ids[0],
        "command": "chain",
        "status": "succeeded",
        "duration_ms": 1.0,
        "principal": first.get("principal_id", ""),
        "attempts": first["attempts"],
        "callback": False,
    }
    sqs = stack.aws("sqs")
    sqs.send_message(QueueUrl=stack.resource("EventsQueue"), MessageBody=json.dumps(duplicate))
    wait_for(lambda: events_queue_drained(stack), timeout_s=20)
    assert chain_steps(stack, key) == list(range(FOLLOW_UP_MAX_DEPTH + 1))
    assert execution(stack, ids[1])["attempts"] == 1


def stats_item(stack: Stack, command: str) -> dict[str, Any]:
    item = (
        stack.aws("dynamodb")
        .get_item(TableName=stack.resource("ControlTable"), Key={"pk": {"S": f"stats#{command}"}}, ConsistentRead=True)
        .get("Item")
    )
    return item or {}


def counts(item: dict[str, Any]) -> tuple[int, int, int]:
    """(count, succeeded, histogram total) of a stats item."""
    histogram = sum(int(v["N"]) for k, v in item.items() if k.startswith("h_"))
    return int(item.get("count", {"N": "0"})["N"]), int(item.get("succeeded", {"N": "0"})["N"]), histogram


def mirror(stack: Stack) -> tuple[int, dict[str, Any]]:
    """The version and value of state key system.command-stats, read from the register."""
    item = (
        stack.aws("dynamodb")
        .get_item(
            TableName=stack.resource("StateTable"),
            Key={"pk": {"S": "key#system.command-stats"}, "sk": {"S": "register"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return (int(item["version"]["N"]), json.loads(item["value_json"]["S"])) if item else (0, {})


def test_command_statistics_equal_the_executions_after_a_concurrent_burst(stack: Stack) -> None:
    client = stack.client(stack.create_key(["commands.run:echo"]))
    wait_for(lambda: events_queue_drained(stack), timeout_s=20)
    before = counts(stats_item(stack, "echo"))
    mirrored_before = mirror(stack)[0]
    burst = 30

    def run(i: int) -> int:
        headers = {"Prefer": "respond-async"} if i % 2 else {}
        return client.post("/v1/commands/echo", json={"message": str(i)}, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert sorted(set(pool.map(run, range(burst)))) == [200, 202]
    wait_for(lambda: counts(stats_item(stack, "echo"))[0] - before[0] >= burst, timeout_s=45)
    wait_for(lambda: events_queue_drained(stack), timeout_s=20)
    after = counts(stats_item(stack, "echo"))
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (burst, burst, burst)
    item = stats_item(stack, "echo")
    assert float(item["duration_ms_sum"]["N"]) > 0 and item["last_status"]["S"] == "succeeded"

    # The mirror in state catches up within its interval (2 s here), spending a few writes, not one per event.
    version, value = wait_for(
        lambda: (m := mirror(stack))[1].get("commands", {}).get("echo", {}).get("count") == after[0] and m,
        timeout_s=45,  # the interval is 2 s; a loaded machine's cold event processor takes longer
    )
    echo = value["commands"]["echo"]
    assert (echo["successes"], echo["failures"]) == (after[1], 0)
    assert echo["mean_ms"] is not None and echo["p95_ms"] >= echo["mean_ms"] / 2
    assert version - mirrored_before < burst / 3
