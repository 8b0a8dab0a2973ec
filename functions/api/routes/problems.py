"""Every failure as problem+json: the resolver's exception handlers (registered in app.py)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from cmdgate import aws_errors, errors
from cmdgate.http import problem_response

logger, metrics = Logger(), Metrics()


def _request_id() -> str | None:
    event = BaseRouter.current_event  # the request being resolved, as the routers see it
    return event.request_context.request_id if isinstance(event, APIGatewayProxyEvent) else None


def handle_problem(error: errors.ProblemError) -> Response[str]:
    return problem_response(error, _request_id())


def handle_request_validation(error: RequestValidationError) -> Response[str]:
    """What Powertools refused, never echoing the input: a body is 422 VALIDATION_FAILED; a header, query or
    path parameter (declared as one string, so only a repeated one fails) is 400 BAD_REQUEST like the layer's."""
    found = errors.validation_errors_from_pydantic(error.errors())
    if found and all(e["loc"][:1] in (["header"], ["query"], ["path"]) for e in found):
        malformed = errors.BadRequest("A parameter is malformed or repeated.", extensions={"errors": found})
        return problem_response(malformed, _request_id())
    return problem_response(errors.ValidationFailed(found), _request_id())


def handle_not_found(_: Exception) -> Response[str]:
    return problem_response(errors.NotFound("No such route."), _request_id())


# AWS throttled or failed a call past botocore's retries: the client is asked to come back shortly.
UNAVAILABLE_RETRY_AFTER_S = 1


def handle_unexpected(error: Exception) -> Response[str]:
    if aws_errors.is_unavailable(error):
        logger.warning("AWS unavailable", extra=aws_errors.unavailable_details(error))
        metrics.add_metric(name="DependencyUnavailable", unit="Count", value=1)
        unavailable = errors.DependencyUnavailable(
            "A dependency is busy or unavailable; retry shortly.",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        )
        return problem_response(unavailable, _request_id())
    logger.exception("unhandled error")
    metrics.add_metric(name="UnhandledErrors", unit="Count", value=1)
    return problem_response(errors.InternalError(), _request_id())
