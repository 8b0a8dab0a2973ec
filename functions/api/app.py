"""API function: the resolver, its middleware and error handlers, and one router per resource (routes/)."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import aws, errors, tracing
from cmdgate.api_docs import configure_openapi, finalize_openapi
from cmdgate.auth import Principal
from cmdgate.body import refuse_bad_body
from cmdgate.http import parse_json, problem_response, with_request_id
from cmdgate.ratelimit import RateLimited
from routes import admin, commands, executions, health, state, webhooks
from routes.problems import handle_not_found, handle_problem, handle_request_validation, handle_unexpected
from routes.request import record_refusal, report_handler_latency, take_waited
from routes.services import services

logger, tracer, metrics = Logger(), tracing.tracer(), Metrics()  # one Logger and Metrics per function: shared state
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)


def rate_limit(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
    """Every authenticated request takes from its principal's bucket (and a command's own) and carries the fields."""
    principal = Principal.from_authorizer_context(app.current_event.request_context.authorizer.raw_event)
    if principal is None:  # the open routes (health, openapi)
        return next_middleware(app)
    limiter = services().rate_limiter
    name = (app.current_event.path_parameters or {}).get("name")
    # Only a real command that declares a limit adds a bucket: made-up names mint nothing.
    is_run = app.current_event.resource == "/v1/commands/{name}"
    own = services().executions.own_rate_limit(principal, name) if is_run and name else None
    try:
        decision = limiter.admit(principal, own)
    except RateLimited as refused:
        record_refusal(limiter, principal, refused.status)
        return problem_response(refused, app.current_event.request_context.request_id)
    try:
        response = next_middleware(app)
    except errors.ProblemError as error:  # shaped here so refusals carry the fields and count too
        response = handle_problem(error)
    except RequestValidationError as error:
        response = handle_request_validation(error)
    except Exception as error:  # noqa: BLE001 - still a 500 problem, with the fields and counted
        response = handle_unexpected(error)
    response.headers.update(decision.headers())
    limiter.record(principal, response.status_code)
    return response


app.use(middlewares=[rate_limit])
app.exception_handler(errors.ProblemError)(handle_problem)
app.exception_handler(RequestValidationError)(handle_request_validation)
app.not_found(handle_not_found)
app.exception_handler(Exception)(handle_unexpected)
for router in (health.router, commands.router, executions.router, state.router, admin.router, webhooks.router):
    app.include_router(router)


@lru_cache(maxsize=1)
def _openapi_document() -> str:
    configure_openapi(app)  # Powertools' OpenAPI models: imported by the one route that serves them
    return json.dumps(finalize_openapi(json.loads(app.get_openapi_json_schema())))


@app.get("/v1/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    """The OpenAPI description of this API, generated from the routes."""
    return Response(status_code=200, content_type="application/json", body=_openapi_document())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    aws.take_call_counts()
    take_waited()  # a request whose wait was counted but never reported must not shorten this one
    response = refuse_bad_body(event, services().settings) or app.resolve(event, context)
    resource = f"{event.get('httpMethod')} {event.get('resource')}"  # the template's route, never a raw path
    report_handler_latency(started, context, route=resource)
    takes, retried = services().rate_limiter.take_counts()  # this environment's totals so far
    aws.report_calls(logger, metrics, resource, rate_limit_takes=takes, rate_limit_retried_takes=retried)
    return with_request_id(response, (event.get("requestContext") or {}).get("requestId") or "")
