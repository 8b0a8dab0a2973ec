"""The scheduled self-healer's checks: what is stuck or dead-lettered, and who to tell."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueueDepth:
    """Visible and in-flight messages of one queue."""

    name: str
    visible: int
    in_flight: int


def queue_depth(sqs: Any, name: str, queue_url: str) -> QueueDepth:
    """Read a queue's approximate depth."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueDepth(
        name,
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def triage_dead_letters(sqs: Any, sns: Any, topic_arn: str, dlqs: dict[str, str]) -> dict[str, Any]:
    """Measure every DLQ and alert the on-call topic when any holds messages."""
    depths = [queue_depth(sqs, name, url) for name, url in dlqs.items() if url]
    counts = {d.name: d.visible + d.in_flight for d in depths}
    waiting = {name: n for name, n in counts.items() if n}
    if waiting and topic_arn:
        sns.publish(
            TopicArn=topic_arn,
            Subject="cmdgate: messages in dead-letter queues",
            Message=json.dumps({"dead_letter_queues": waiting}),
        )
    return {"dead_letter_queues": counts, "alerted": bool(waiting and topic_arn)}
