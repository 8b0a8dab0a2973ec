"""Alerts against in-process SNS and DynamoDB: the message's fields, one per cause per window, runbooks exist."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from cmdgate import alerts as alert_names
from cmdgate.alerts import Alerts

ROOT = Path(__file__).resolve().parents[3]


class Inbox:
    def __init__(self, session: boto3.session.Session) -> None:
        self.sqs = session.client("sqs")
        self.sns = session.client("sns")
        self.topic = self.sns.create_topic(Name="alerts")["TopicArn"]
        self.url = self.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn)

    def messages(self) -> list[dict[str, Any]]:
        received = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(json.loads(m["Body"])["Message"]) for m in received]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def inbox(session: boto3.session.Session) -> Inbox:
    return Inbox(session)


@pytest.fixture
def make_alerts(
    session: boto3.session.Session, inbox: Inbox, table_like: Callable[[str], Any]
) -> Callable[..., Alerts]:
    table = table_like("ControlTable")

    def make(clock: Clock, topic: str | None = None, **kwargs: Any) -> Alerts:
        return Alerts(
            inbox.sns,
            inbox.topic if topic is None else topic,
            session.client("dynamodb"),
            table.name,
            window_s=600,
            clock=clock,
            **kwargs,
        )

    return make


def test_an_alert_carries_the_id_a_one_line_cause_and_its_runbook(
    make_alerts: Callable[..., Alerts], inbox: Inbox
) -> None:
    alerts = make_alerts(Clock(6000.0), runbook_base="https://github.com/o/cmdgate/blob/main/")
    assert alerts.send("execution_dead_lettered", "abc123", "COMMAND_FAILED: boom\nsecond line")
    (message,) = inbox.messages()
    assert message["alert"] == "execution_dead_lettered"
    assert message["subject_id"] == "abc123"
    assert message["cause"] == "COMMAND_FAILED: boom second line"
    assert message["runbook"] == "https://github.com/o/cmdgate/blob/main/docs/runbooks/execution_dead_lettered.md"
    assert message["window_start"] == 6000


def test_one_alert_per_cause_per_window(make_alerts: Callable[..., Alerts], inbox: Inbox) -> None:
    clock = Clock(6000.0)
    alerts = make_alerts(clock)
    sent = [alerts.send("execution_dead_lettered", f"id{i}", "COMMAND_TIMEOUT: slow") for i in range(5)]
    assert sent == [True, False, False, False, False]
    assert alerts.send("execution_dead_lettered", "id9", "COMMAND_FAILED: other cause")  # another cause
    assert alerts.send("execution_stuck", "id9", "COMMAND_TIMEOUT: slow")  # another alert
    clock.now = 6600.0  # the next window
    assert alerts.send("execution_dead_lettered", "id10", "COMMAND_TIMEOUT: slow")
    assert [(m["alert"], m["subject_id"]) for m in inbox.messages()] == [
        ("execution_dead_lettered", "id0"),
        ("execution_dead_lettered", "id9"),
        ("execution_stuck", "id9"),
        ("execution_dead_lettered", "id10"),
    ]


def test_a_failed_publish_gives_the_window_back(
    make_alerts: Callable[..., Alerts], inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = make_alerts(Clock(6000.0))

    def refuse(**_: Any) -> None:
        raise RuntimeError("sns down")

    with monkeypatch.context() as patched:
        patched.setattr(inbox.sns, "publish", refuse)
        with pytest.raises(RuntimeError):
            alerts.send("poison_message", "x", "cause")
    assert alerts.send("poison_message", "x", "cause")  # not suppressed: nothing went out before
    assert len(inbox.messages()) == 1


def test_without_a_topic_nothing_is_sent_or_marked(make_alerts: Callable[..., Alerts], inbox: Inbox) -> None:
    assert not make_alerts(Clock(6000.0), topic="").send("poison_message", "x", "cause")
    assert make_alerts(Clock(6000.0)).send("poison_message", "x", "cause")


def test_alert_names_are_checked(make_alerts: Callable[..., Alerts]) -> None:
    with pytest.raises(ValueError, match="not an alert name"):
        make_alerts(Clock(0.0)).send("../../etc/passwd", "x", "cause")


def test_every_alert_has_a_runbook() -> None:
    for alert in alert_names.ALERTS:
        runbook = ROOT / "docs" / "runbooks" / f"{alert}.md"
        assert runbook.is_file(), f"{alert} has no runbook"
        assert runbook.read_text().startswith(f"# {alert}")


def test_long_or_non_ascii_ids_still_make_a_valid_sns_subject(make_alerts: Callable[..., Alerts], inbox: Inbox) -> None:
    alerts = make_alerts(Clock(6000.0))
    assert alerts.send("breaker_open", "hôte-" + "x" * 300, "c" * 1000)
    received = inbox.sqs.receive_message(QueueUrl=inbox.url)["Messages"]
    envelope = json.loads(received[0]["Body"])
    assert envelope["Subject"].isascii() and len(envelope["Subject"]) < 100
    message = json.loads(envelope["Message"])
    assert len(message["subject_id"]) == 128 and message["subject_id"].endswith("...")
    assert len(message["cause"]) == 300
