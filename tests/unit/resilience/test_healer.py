"""triage_dead_letters against in-process SQS and SNS: measure every DLQ, alert only when one holds messages."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cmdgate.healer import QueueDepth, queue_depth, triage_dead_letters


class Setup:
    def __init__(self, session: boto3.session.Session) -> None:
        self.sqs = session.client("sqs")
        self.sns = session.client("sns")
        self.dlqs = {
            name: self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"] for name in ("executions", "events")
        }
        self.topic = self.sns.create_topic(Name="alerts")["TopicArn"]
        # The on-call topic delivers into a queue the test reads.
        self.inbox = self.sqs.create_queue(QueueName="on-call-inbox")["QueueUrl"]
        inbox_arn = self.sqs.get_queue_attributes(QueueUrl=self.inbox, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=inbox_arn)

    def alerts(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def env(session: boto3.session.Session) -> Setup:
    return Setup(session)


def test_empty_dlqs_raise_no_alert(env: Setup) -> None:
    report = triage_dead_letters(env.sqs, env.sns, env.topic, env.dlqs)
    assert report == {"dead_letter_queues": {"executions": 0, "events": 0}, "alerted": False}
    assert env.alerts() == []


def test_a_dlq_with_messages_alerts_the_topic(env: Setup) -> None:
    for i in range(3):
        env.sqs.send_message(QueueUrl=env.dlqs["executions"], MessageBody=json.dumps({"execution_id": f"e{i}"}))
    report = triage_dead_letters(env.sqs, env.sns, env.topic, env.dlqs)
    assert report == {"dead_letter_queues": {"executions": 3, "events": 0}, "alerted": True}
    (alert,) = env.alerts()
    assert alert["Subject"] == "cmdgate: messages in dead-letter queues"
    assert json.loads(alert["Message"]) == {"dead_letter_queues": {"executions": 3}}


def test_in_flight_dead_letters_count_too(env: Setup) -> None:
    env.sqs.send_message(QueueUrl=env.dlqs["events"], MessageBody="{}")
    received = env.sqs.receive_message(QueueUrl=env.dlqs["events"], VisibilityTimeout=300)["Messages"]
    assert len(received) == 1
    assert queue_depth(env.sqs, "events", env.dlqs["events"]) == QueueDepth("events", 0, 1)
    report = triage_dead_letters(env.sqs, env.sns, env.topic, env.dlqs)
    assert report["dead_letter_queues"]["events"] == 1
    assert report["alerted"]
    assert len(env.alerts()) == 1


def test_unconfigured_queues_are_skipped(env: Setup) -> None:
    env.sqs.send_message(QueueUrl=env.dlqs["events"], MessageBody="{}")
    report = triage_dead_letters(env.sqs, env.sns, env.topic, {"events": env.dlqs["events"], "state_sync": ""})
    assert report == {"dead_letter_queues": {"events": 1}, "alerted": True}


def test_without_a_topic_nothing_is_published(env: Setup) -> None:
    env.sqs.send_message(QueueUrl=env.dlqs["executions"], MessageBody="{}")
    report = triage_dead_letters(env.sqs, env.sns, "", env.dlqs)
    assert report == {"dead_letter_queues": {"executions": 1, "events": 0}, "alerted": False}
    assert env.alerts() == []
