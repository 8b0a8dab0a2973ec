"""`serialized`: one request at a time inside moto, except SQS long polls; `recording`: who called what."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from cmdgate_local.moto_endpoint import (
    CALLS_PATH,
    LOCK_TIME_PATH,
    MEMORY_PATH,
    CallRecorder,
    LockTimes,
    recording,
    serialized,
)

# A bounded wait for something that must NOT happen; everything that must happen is awaited on an Event.
NEGATIVE_WAIT_S = 0.2
TIMEOUT_S = 5.0


class BlockingApp:
    """A WSGI app that records who is inside and blocks each request until the test releases it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside: set[str] = set()
        self.max_inside = 0
        self.order: list[str] = []
        self.entered: dict[str, threading.Event] = {}
        self.release: dict[str, threading.Event] = {}

    def expect(self, name: str) -> None:
        self.entered[name] = threading.Event()
        self.release[name] = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        name = environ["HTTP_X_NAME"]
        with self.lock:
            self.inside.add(name)
            self.max_inside = max(self.max_inside, len(self.inside))
            self.order.append(f"enter {name}")
        self.entered[name].set()
        assert self.release[name].wait(TIMEOUT_S), f"{name} was never released"
        with self.lock:
            self.inside.discard(name)
            self.order.append(f"leave {name}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]


@pytest.fixture
def app() -> Iterator[BlockingApp]:
    blocking = BlockingApp()
    yield blocking
    for event in blocking.release.values():
        event.set()


def request(wrapped: Callable[..., Any], name: str, target: str | None = None) -> tuple[threading.Thread, list[bytes]]:
    answers: list[bytes] = []
    headers = {"X-Name": name}
    if target is not None:
        headers["X-Amz-Target"] = target

    def run() -> None:
        answers.append(Client(wrapped).post("/", headers=headers).get_data())

    thread = threading.Thread(target=run, name=f"request-{name}", daemon=True)
    thread.start()
    return thread, answers


def test_requests_never_overlap(app: BlockingApp) -> None:
    wrapped = serialized(app)
    app.expect("a")
    app.expect("b")
    thread_a, answer_a = request(wrapped, "a", "DynamoDB_20120810.UpdateItem")
    assert app.entered["a"].wait(TIMEOUT_S)
    thread_b, answer_b = request(wrapped, "b", "DynamoDB_20120810.UpdateItem")
    assert not app.entered["b"].wait(NEGATIVE_WAIT_S), "b entered while a was inside"
    app.release["a"].set()
    assert app.entered["b"].wait(TIMEOUT_S)
    app.release["b"].set()
    thread_a.join(TIMEOUT_S)
    thread_b.join(TIMEOUT_S)
    assert app.order == ["enter a", "leave a", "enter b", "leave b"]
    assert app.max_inside == 1
    assert (answer_a, answer_b) == ([b"a"], [b"b"])


def test_receive_message_bypasses_the_lock(app: BlockingApp) -> None:
    wrapped = serialized(app)
    app.expect("writer")
    app.expect("long-poll")
    thread_w, _ = request(wrapped, "writer", "DynamoDB_20120810.PutItem")
    assert app.entered["writer"].wait(TIMEOUT_S)
    thread_p, answer_p = request(wrapped, "long-poll", "AmazonSQS.ReceiveMessage")
    assert app.entered["long-poll"].wait(TIMEOUT_S), "a long poll waited for the lock"
    assert app.inside == {"writer", "long-poll"}
    app.release["long-poll"].set()
    thread_p.join(TIMEOUT_S)
    assert answer_p == [b"long-poll"]
    app.release["writer"].set()
    thread_w.join(TIMEOUT_S)


def test_a_long_poll_does_not_block_locked_requests(app: BlockingApp) -> None:
    wrapped = serialized(app)
    app.expect("long-poll")
    app.expect("writer")
    thread_p, _ = request(wrapped, "long-poll", "AmazonSQS.ReceiveMessage")
    assert app.entered["long-poll"].wait(TIMEOUT_S)
    thread_w, _ = request(wrapped, "writer", "AmazonSQS.SendMessage")
    assert app.entered["writer"].wait(TIMEOUT_S), "a locked request waited for a long poll"
    app.release["writer"].set()
    app.release["long-poll"].set()
    thread_w.join(TIMEOUT_S)
    thread_p.join(TIMEOUT_S)


def test_status_headers_and_legacy_write_are_passed_on() -> None:
    def legacy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("201 Created", [("X-Moto", "yes"), ("Content-Type", "text/plain")])
        write(b"written-")
        return [b"returned"]

    response = Client(serialized(legacy)).get("/")
    assert response.status_code == 201
    assert response.headers["X-Moto"] == "yes"
    assert response.get_data() == b"written-returned"


# -- recording: who called what, for the least-privilege check -------------------------------------------


class EchoApp:
    """Answers with the body it was given, so a test sees the recorder left the body intact."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]


def signed(access_key: str, service: str) -> dict[str, str]:
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/20261201/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    }


def test_calls_are_recorded_by_access_key_action_and_resource_and_reach_the_app() -> None:
    recorder = CallRecorder()
    client = Client(recording(EchoApp(), recorder))
    body = json.dumps({"TableName": "keys", "Key": {"key_hash": {"S": "h"}}})
    headers = {**signed("LOCALAUTHORIZERFUNCTION", "dynamodb"), "X-Amz-Target": "DynamoDB_20120810.GetItem"}
    for _ in range(2):
        assert client.post("/", data=body, headers=headers).get_data(as_text=True) == body
    form = "Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aalerts&Message=hi"
    answer = client.post(
        "/",
        data=form,
        headers={**signed("LOCALHEALERFUNCTION", "sns")},
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.get_data(as_text=True) == form
    client.post("/", data="{}", headers={"X-Amz-Target": "DynamoDB_20120810.Scan"})  # unsigned: not a function's
    recorded = json.loads(client.get(CALLS_PATH).get_data())["calls"]
    assert recorded == [
        {"access_key": "LOCALAUTHORIZERFUNCTION", "action": "dynamodb:GetItem", "resources": ["keys"], "count": 2},
        {
            "access_key": "LOCALHEALERFUNCTION",
            "action": "sns:Publish",
            "resources": ["arn:aws:sns:us-east-1:123456789012:alerts"],
            "count": 1,
        },
    ]


def test_a_transaction_is_recorded_as_the_actions_iam_checks_for_its_parts() -> None:
    recorder = CallRecorder()
    body = {
        "TransactItems": [
            {"Put": {"TableName": "control", "Item": {}}},
            {"Update": {"TableName": "control", "Key": {}}},
            {"ConditionCheck": {"TableName": "state", "Key": {}}},
        ]
    }
    headers = {
        **signed("LOCALEVENTPROCESSORFUNCTION", "dynamodb"),
        "X-Amz-Target": "DynamoDB_20120810.TransactWriteItems",
    }
    Client(recording(EchoApp(), recorder)).post("/", data=json.dumps(body), headers=headers)
    assert sorted((c["action"], tuple(c["resources"])) for c in recorder.calls()) == [
        ("dynamodb:ConditionCheckItem", ("state",)),
        ("dynamodb:PutItem", ("control",)),
        ("dynamodb:UpdateItem", ("control",)),
    ]


# -- lock time per action, memory ---------------------------------------------------------------------------


def test_lock_time_is_counted_per_action_and_served() -> None:
    times = LockTimes()
    held = threading.Event()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        held.wait(0.05)  # bounded: the time inside the lock the report must show
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = Client(recording(serialized(slow, times), CallRecorder(), times))
    for _ in range(2):
        client.post("/", headers={"X-Amz-Target": "DynamoDB_20120810.TransactWriteItems"})
    client.post("/?Action=Publish")
    client.post("/", headers={"X-Amz-Target": "AmazonSQS.ReceiveMessage"})  # unlocked: not counted
    report = json.loads(client.get(LOCK_TIME_PATH).get_data())
    by_action = {entry["action"]: entry for entry in report["actions"]}
    assert set(by_action) == {"DynamoDB_20120810.TransactWriteItems", "Publish"}
    assert by_action["DynamoDB_20120810.TransactWriteItems"]["calls"] == 2
    assert by_action["DynamoDB_20120810.TransactWriteItems"]["held_s"] >= 0.09
    assert report["actions"][0]["action"] == "DynamoDB_20120810.TransactWriteItems"
    assert report["calls"] == 3


def test_memory_route_reports_rss() -> None:
    answer = json.loads(Client(recording(EchoApp(), CallRecorder())).get(MEMORY_PATH).get_data())
    assert answer["rss_bytes"] > 0
    assert answer["tracing"] is False


def test_resources_are_recorded_as_the_arns_policies_name() -> None:
    from cmdgate_local.moto_endpoint import _resources

    assert _resources({"QueueUrl": "http://127.0.0.1:5000/123456789012/jobs"}, "eu-west-1") == (
        "arn:aws:sqs:eu-west-1:123456789012:jobs",
    )
    execution = "arn:aws:states:us-east-1:123456789012:execution:deploy:run-1"
    assert _resources({"executionArn": execution}) == ("arn:aws:states:us-east-1:123456789012:stateMachine:deploy",)
    bus = "arn:aws:events:us-east-1:123456789012:event-bus/ops"
    assert _resources({"Entries": [{"EventBusName": bus}, {"Source": "x"}]}) == (bus, "default")


def test_a_control_path_takes_a_json_object_and_answers_json() -> None:
    asked: list[dict[str, Any]] = []

    def pause(body: dict[str, Any]) -> dict[str, Any]:
        asked.append(body)
        if body.get("function") != "WorkerFunction":
            raise ValueError("no such mapping")
        return {"enabled": body["enabled"]}

    client = Client(recording(EchoApp(), CallRecorder(), None, {"/_cmdgate/event-sources": pause}))
    answer = client.post("/_cmdgate/event-sources", data=json.dumps({"function": "WorkerFunction", "enabled": False}))
    assert (answer.status_code, answer.get_json()) == (200, {"enabled": False})
    for bad in ("[1]", "not json", json.dumps({"function": "Other", "enabled": True})):
        refused = client.post("/_cmdgate/event-sources", data=bad)
        assert refused.status_code == 400 and "error" in refused.get_json()
    assert len(asked) == 2  # the non-objects never reached the control
    # Any other method or path is moto's, and recorded as a call.
    assert client.get("/_cmdgate/event-sources").get_data(as_text=True) == ""
