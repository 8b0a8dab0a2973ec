"""Alerts the execution path raises itself (a poison message), published to the alerts SNS topic."""

from __future__ import annotations

import json
from typing import Any


class TopicAlerts:
    """Publishes one alert per call: the affected id, a one-line cause and the runbook's path."""

    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def __call__(self, alert: str, affected_id: str, cause: str) -> None:
        """Publish `alert` (its runbook is docs/runbooks/<alert>.md)."""
        message = {"alert": alert, "id": affected_id, "cause": cause, "runbook": f"docs/runbooks/{alert}.md"}
        self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=f"cmdgate: {alert}"[:100],
            Message=json.dumps(message, separators=(",", ":")),
        )
