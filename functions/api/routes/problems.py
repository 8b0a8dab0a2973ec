"""Every failure as problem+json: the resolver's exception handlers (registered in app.py)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from cmdgate import errors
from cmdgate.http import problem_response

logger, metrics = Logger(), Metrics()


def _request_id() -> str | None:
    event = BaseRouter.current_event  # the request being resolved, as the routers see it
    return event.request_context.request_id if isinstance(event, APIGatewayProxyEvent) else None


def handle_problem(error: errors.ProblemError) -> Response[str]:
    return problem_response(error, _request_id())


def handle_request_validation(error: RequestValidationError) -> Response[str]:
    """A parameter or body Powertools refused: 422 VALIDATION_FAILED, never echoing the input."""
    failed = errors.ValidationFailed(errors.validation_errors_from_pydantic(error.errors()))
    return problem_response(failed, _request_id())


def handle_not_found(_: Exception) -> Response[str]:
    return problem_response(errors.NotFound("No such route."), _request_id())


def handle_unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error")
    metrics.add_metric(name="UnhandledErrors", unit="Count", value=1)
    return problem_response(errors.InternalError(), _request_id())
