"""Healer: scheduled triage of dead-letter queues (more repairs join as they are built)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import aws
from cmdgate.config import get_settings
from cmdgate.healer import triage_dead_letters

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    report = triage_dead_letters(
        aws.client("sqs"),
        aws.client("sns"),
        settings.alerts_topic_arn,
        {"executions": settings.executions_dlq_url, "events": settings.events_dlq_url},
    )
    for name, depth in report["dead_letter_queues"].items():
        metrics.add_metric(name=f"DeadLetters_{name}", unit="Count", value=depth)
    logger.info("healer run", extra=report)
    return report
