"""An execution's status and result (optionally waiting for its end), and cancelling it."""

from __future__ import annotations

import re

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from cmdgate import errors
from cmdgate.api_docs import ExecutionId, ExecutionView, Wait, responses
from cmdgate.executions.service import MAX_WAIT_S, WORKER_DEADLINE_MARGIN_S
from cmdgate.http import json_response
from routes.request import add_waited, principal, remaining_s
from routes.services import services

router = APIGatewayRouter()


def parse_wait(value: str | None) -> int:
    """`wait`: whole seconds, 0..MAX_WAIT_S (absent: 0)."""
    if value is None or value == "":
        return 0
    if not re.fullmatch(r"[0-9]{1,2}", value) or int(value) > MAX_WAIT_S:  # ASCII digits only
        raise errors.BadRequest(f"wait must be an integer from 0 to {MAX_WAIT_S} (seconds).")
    return int(value)


@router.get(
    "/v1/executions/<execution_id>",
    tags=["executions"],
    operation_id="getExecution",
    responses=responses({200: ("The execution", ExecutionView)}, 400),
)
def get_execution(execution_id: ExecutionId, wait: Wait = None) -> Response[str]:
    """An execution the caller created (or any, for admin); `wait=N` holds the answer until it ends or N s pass."""
    wait_s = min(parse_wait(wait), max(0.0, remaining_s(router) - WORKER_DEADLINE_MARGIN_S))
    if not wait_s:
        return json_response(200, services().executions.get(principal(router), execution_id).public_view())
    execution, waited_s = services().executions.wait(principal(router), execution_id, wait_s)
    add_waited(waited_s)  # a long poll is not a slow request (the HandlerLatency metric)
    return json_response(200, execution.public_view())


@router.post(
    "/v1/executions/<execution_id>/cancel",
    tags=["executions"],
    operation_id="cancelExecution",
    responses=responses({200: ("The execution, cancelled or with `cancel_requested`", ExecutionView)}, 409),
)
def cancel_execution(execution_id: ExecutionId) -> Response[str]:
    """Cancel: a queued execution never runs (`cancelled`); a running one gets `cancel_requested: true` and its
    command may stop (then `cancelled`); one that already ended answers 409 EXECUTION_FINISHED."""
    return json_response(200, services().executions.cancel(principal(router), execution_id).public_view())
