"""The local SQS event source mapping: which messages an invocation consumed."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest

from cmdgate_local.lambda_runtime import InvokeResult
from cmdgate_local.sqs_poller import SqsPoller, messages_to_delete, sqs_event
from cmdgate_local.template import REGION, SqsSource

MESSAGES = [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": f"body {i}"} for i in (1, 2, 3)]


def answer(payload: Any, function_error: bool = False) -> InvokeResult:
    return InvokeResult(json.dumps(payload).encode(), function_error, 1.0, False, 0)


def ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["MessageId"] for m in messages]


def test_a_function_error_consumes_nothing() -> None:
    result = answer({"errorType": "Exception", "errorMessage": "boom"}, function_error=True)
    assert messages_to_delete(MESSAGES, result, partial=True) == []
    assert messages_to_delete(MESSAGES, result, partial=False) == []


def test_without_the_partial_flag_a_success_consumes_everything() -> None:
    result = answer({"batchItemFailures": [{"itemIdentifier": "m1"}]})
    assert ids(messages_to_delete(MESSAGES, result, partial=False)) == ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    ("failures", "kept"),
    [
        ([{"itemIdentifier": "m2"}], ["m1", "m3"]),
        ([{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}], ["m2"]),
        ([{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}], []),
        ([{"itemIdentifier": "m2"}, {"itemIdentifier": "m2"}], ["m1", "m3"]),
        ([], ["m1", "m2", "m3"]),
    ],
)
def test_partial_failures_keep_only_the_failed(failures: list[dict[str, Any]], kept: list[str]) -> None:
    result = answer({"batchItemFailures": failures})
    assert ids(messages_to_delete(MESSAGES, result, partial=True)) == kept


@pytest.mark.parametrize("payload", [None, {}, {"batchItemFailures": None}, {"somethingElse": 1}])
def test_an_empty_or_null_response_is_a_complete_success(payload: Any) -> None:
    # AWS: an empty/null EventResponse or batchItemFailures list means the whole batch succeeded.
    assert ids(messages_to_delete(MESSAGES, answer(payload), partial=True)) == ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    "failures",
    [
        {"itemIdentifier": "m1"},
        "m1",
        ["m1"],
        [{"itemIdentifier": ""}],
        [{"itemIdentifier": None}],
        [{"ItemIdentifier": "m1"}],
        [{"messageId": "m1"}],
        [{"itemIdentifier": "m1"}, {"itemId": "m2"}],
        [{"itemIdentifier": "m1"}, None],
    ],
)
def test_malformed_batch_item_failures_fail_the_whole_batch(failures: Any) -> None:
    result = answer({"batchItemFailures": failures})
    assert messages_to_delete(MESSAGES, result, partial=True) == []


def test_an_answer_that_is_not_json_fails_the_whole_batch() -> None:
    result = InvokeResult(b"Task timed out after 5.00 seconds", False, 1.0, True, 0)
    assert messages_to_delete(MESSAGES, result, partial=True) == []


def test_sqs_event_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": '{"execution_id": "e1"}',
        "MD5OfBody": "abc",
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {"kind": {"StringValue": "x", "DataType": "String"}},
    }
    event = sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:q")
    (record,) = event["Records"]
    assert record["messageId"] == "m1"
    assert record["receiptHandle"] == "r1"
    assert record["body"] == '{"execution_id": "e1"}'
    assert record["attributes"] == {"ApproximateReceiveCount": "2"}
    assert record["messageAttributes"]["kind"]["stringValue"] == "x"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        "arn:aws:sqs:us-east-1:123456789012:q",
        REGION,
    )


def test_poll_once_deletes_what_succeeded_and_leaves_the_failures(session: boto3.session.Session) -> None:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}))
    events: list[dict[str, Any]] = []

    def invoke(function_id: str, event: dict[str, Any]) -> InvokeResult:
        assert function_id == "WorkerFunction"
        events.append(event)
        failed = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["n"] == 1]
        return answer({"batchItemFailures": [{"itemIdentifier": m} for m in failed]})

    source = SqsSource("WorkerFunction", "Work", 10, 0.0, True, 1)
    poller = SqsPoller(source, url, arn, sqs, invoke, concurrency=1)
    assert poller.poll_once() == 3
    (event,) = events
    assert len(event["Records"]) == 3
    assert all(r["eventSourceARN"] == arn for r in event["Records"])
    assert all(int(r["attributes"]["ApproximateReceiveCount"]) == 1 for r in event["Records"])
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (depth["ApproximateNumberOfMessages"], depth["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")
    assert poller.batches == 1


def test_a_paused_mapping_leaves_its_queue_alone_until_resumed(session: boto3.session.Session) -> None:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="paused", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    invoked = threading.Event()

    def invoke(function_id: str, event: dict[str, Any]) -> InvokeResult:
        invoked.set()
        return answer(None)

    poller = SqsPoller(SqsSource("WorkerFunction", "Work", 10, 0.0, True, 1), url, arn, sqs, invoke, concurrency=1)
    poller.set_enabled(False)
    poller.start()
    try:
        # Paused before its first poll: the message stays visible (nobody received it).
        assert not invoked.wait(timeout=1.5)
        depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert depth["Attributes"]["ApproximateNumberOfMessages"] == "1" and poller.enabled is False
        poller.set_enabled(True)
        assert invoked.wait(timeout=10)
    finally:
        poller.stop()


def test_a_mapping_is_busy_while_its_batch_runs_even_once_paused(session: boto3.session.Session) -> None:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="busy", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    running, release = threading.Event(), threading.Event()

    def invoke(function_id: str, event: dict[str, Any]) -> InvokeResult:
        running.set()
        release.wait(timeout=30)
        return answer(None)

    poller = SqsPoller(SqsSource("WorkerFunction", "Work", 10, 0.0, True, 1), url, arn, sqs, invoke, concurrency=1)
    poller.start()
    try:
        assert running.wait(timeout=10)
        poller.set_enabled(False)
        assert poller.busy == 1  # paused, but its batch is still being invoked
        release.set()
        for _ in range(200):
            if poller.busy == 0:
                break
            threading.Event().wait(0.05)
        assert poller.busy == 0
        depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
        assert depth["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"  # consumed and deleted
    finally:
        poller.stop()
