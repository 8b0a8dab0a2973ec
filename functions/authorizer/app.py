"""Lambda REQUEST authorizer: bearer token -> principal -> IAM policy."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import tracing
from cmdgate.auth import AuthenticationFailed, authorize_request
from cmdgate.wiring import services

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    logger.set_correlation_id(request_id)
    try:
        response = authorize_request(event, services().api_keys, lambda: services().jwt_verifier)
    except AuthenticationFailed as failure:
        logger.info("authentication refused", extra={"reason": str(failure)})
        metrics.add_metric(name="AuthenticationRefused", unit="Count", value=1)
        # The exact message API Gateway turns into a 401.
        raise Exception("Unauthorized") from None
    logger.info("authenticated", extra={"principal_id": response["principalId"]})
    return response
