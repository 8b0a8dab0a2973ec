"""Healer: one bounded, idempotent repair pass per scheduled event (cmdgate.healer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import tracing
from cmdgate.wiring import services

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
# Time kept back from the Lambda's own deadline to record the pass and flush the metrics.
RESERVE_S = 5.0


def log_action(action: str, fields: Mapping[str, Any]) -> None:
    """Every repair is one log line (with the pass's correlation id) and one EMF count."""
    logger.info("healer action", extra={"action": action, **fields})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    pass_id = context.aws_request_id
    logger.set_correlation_id(pass_id)
    settings = services().settings
    budget_s = min(settings.healer_pass_budget_s, context.get_remaining_time_in_millis() / 1000 - RESERVE_S)
    report = services().healer(log_action).run(pass_id, budget_s)
    for action, count in report.actions.items():
        metrics.add_metric(name=f"Healer_{action}", unit=MetricUnit.Count, value=count)
    for name, depth in report.dead_letter_queues.items():
        metrics.add_metric(name=f"DeadLetters_{name}", unit=MetricUnit.Count, value=depth)
    metrics.add_metric(name="HealerPassOk", unit=MetricUnit.Count, value=1 if report.ok else 0)
    answer = report.as_dict()
    logger.info("healer pass", extra=answer)
    return answer
