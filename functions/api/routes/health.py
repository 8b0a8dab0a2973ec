"""GET /v1/health: liveness of the dependencies, open to anyone."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from cmdgate.api_docs import HealthView, responses
from cmdgate.health import health_report, run_checks
from cmdgate.http import json_response
from routes.services import services

router = APIGatewayRouter()


def health_answer(detailed: bool) -> Response[str]:
    """The health report: 200 healthy or degraded, 503 unhealthy."""
    report = health_report(
        run_checks(services().health_checks(), services().settings.health_check_timeout_s), detailed=detailed
    )
    return json_response(503 if report["status"] == "unhealthy" else 200, report)


@router.get(
    "/v1/health",
    tags=["health"],
    operation_id="getHealth",
    responses=responses(
        {200: ("Healthy or degraded", HealthView), 503: ("Unhealthy", HealthView)}, authenticated=False
    ),
)
def get_health() -> Response[str]:
    """Liveness of the dependencies, without error details."""
    return health_answer(detailed=False)
