"""An execution's status and result."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from cmdgate.api_docs import ExecutionId, ExecutionView, responses
from cmdgate.http import json_response
from routes.request import principal
from routes.services import services

router = APIGatewayRouter()


@router.get(
    "/v1/executions/<execution_id>",
    tags=["executions"],
    operation_id="getExecution",
    responses=responses({200: ("The execution", ExecutionView)}),
)
def get_execution(execution_id: ExecutionId) -> Response[str]:
    """An execution the caller created (or any, for admin)."""
    return json_response(200, services().executions.get(principal(router), execution_id).public_view())
