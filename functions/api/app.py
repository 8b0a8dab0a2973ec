"""API function: routes -> the layer's services -> HTTP responses."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import aws, errors
from cmdgate.admin import CreatedKey, CreateKeyRequest, create_key, list_keys, require_admin, revoke_key
from cmdgate.api_docs import (
    API_DESCRIPTION,
    API_TITLE,
    API_VERSION,
    Accepted,
    CommandList,
    ExecutionView,
    HealthView,
    KeyList,
    RunResult,
    finalize_openapi,
    responses,
)
from cmdgate.auth import Principal
from cmdgate.config import get_settings
from cmdgate.health import health_report, run_checks
from cmdgate.http import header, http_response, json_response, prefers_async, problem_response, with_request_id
from cmdgate.idempotency import IdempotencyKeyMissing, parse_idempotency_key, request_fingerprint
from cmdgate.pagination import decode_cursor, encode_cursor, parse_limit
from cmdgate.ratelimit import RateLimited
from cmdgate.wiring import api_key_store, execution_service, health_checks, idempotent_requests, rate_limiter

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
app.configure_openapi(
    title=API_TITLE,
    version=API_VERSION,
    description=API_DESCRIPTION,
    security_schemes={"bearer": HTTPBearer(description="An API key issued by POST /v1/admin/keys, or a JWT")},
    security=[{"bearer": []}],
)


def _request_id() -> str | None:
    return app.current_event.request_context.request_id


def _principal() -> Principal:
    principal = Principal.from_authorizer_context(app.current_event.request_context.authorizer.raw_event)
    if principal is None:
        raise errors.Unauthorized("No authenticated principal.")
    return principal


@app.get(
    "/v1/health",
    tags=["health"],
    responses=responses(
        {200: ("Healthy or degraded", HealthView), 503: ("Unhealthy", HealthView)}, authenticated=False
    ),
)
def get_health() -> Response[str]:
    """Liveness of the dependencies, without error details."""
    report = health_report(run_checks(health_checks(), get_settings().health_check_timeout_s), detailed=False)
    return json_response(503 if report["status"] == "unhealthy" else 200, report)


def rate_limit(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
    """Every authenticated request takes from its (principal, command) bucket and carries the RateLimit fields."""
    principal = Principal.from_authorizer_context(app.current_event.request_context.authorizer.raw_event)
    if principal is None:  # the open routes (health, openapi)
        return next_middleware(app)
    limiter = rate_limiter()
    name = (app.current_event.path_parameters or {}).get("name")
    scope = name if app.current_event.resource == "/v1/commands/{name}" and name else "api"
    try:
        decision = limiter.admit(principal, scope)
    except RateLimited as refused:
        limiter.record(principal, refused.status)
        return problem_response(refused, _request_id())
    try:
        response = next_middleware(app)
    except errors.ProblemError as error:  # shaped here so refusals carry the fields and count too
        response = handle_problem(error)
    except RequestValidationError as error:
        response = handle_request_validation(error)
    response.headers.update(decision.headers())
    limiter.record(principal, response.status_code)
    return response


app.use(middlewares=[rate_limit])


@lru_cache(maxsize=1)
def _openapi_document() -> str:
    return json.dumps(finalize_openapi(json.loads(app.get_openapi_json_schema())))


@app.get("/v1/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    """The OpenAPI description of this API, generated from the routes."""
    return Response(
        status_code=200,
        content_type="application/json",
        body=_openapi_document(),
    )


@app.get(
    "/v1/commands", tags=["commands"], responses=responses({200: ("Commands the caller may run", CommandList)}, 400)
)
def list_commands() -> Response[str]:
    """The commands the caller may run."""
    params = app.current_event.query_string_parameters or {}
    start = decode_cursor(params.get("cursor"), frozenset({"after"}))
    commands, last = execution_service().list_commands(
        _principal(), parse_limit(params.get("limit")), start["after"] if start else None
    )
    return json_response(200, {"commands": commands, "next_cursor": encode_cursor({"after": last} if last else None)})


@app.post(
    "/v1/commands/<name>",
    tags=["commands"],
    responses=responses(
        {200: ("Sync run succeeded", RunResult), 202: ("Queued (Prefer: respond-async)", Accepted)},
        400,
        404,
        409,
        413,
        422,
        500,
        503,
        504,
    ),
)
def run_command(name: str) -> Response[str]:
    """Run a command sync, or queue it when `Prefer: respond-async`; Idempotency-Key makes it run once."""
    event, settings = app.current_event, get_settings()
    body = event.body
    if body is not None and len(body.encode("utf-8")) > settings.max_body_bytes:
        raise errors.PayloadTooLarge(f"The request body is over {settings.max_body_bytes} bytes.")
    principal, service = _principal(), execution_service()
    key = parse_idempotency_key(header(event.headers, "Idempotency-Key"))
    prepared = service.prepare(principal, name, body, prefer_async=prefers_async(header(event.headers, "Prefer")))
    if key is None:
        if prepared.spec.idempotency == "required":
            raise IdempotencyKeyMissing(f"Command {name!r} requires an Idempotency-Key header.")
        return http_response(service.start(principal, prepared).to_http())
    requests = idempotent_requests()
    requests.register_lambda_context(app.lambda_context)
    stored = requests.run(
        principal.principal_id,
        key,
        request_fingerprint(event.http_method, event.path, prepared.raw_params),
        lambda: service.start(principal, prepared).to_http(),
        retry_after_s=settings.idempotency_retry_after_s,
    )
    return http_response(stored)


@app.get(
    "/v1/executions/<execution_id>",
    tags=["executions"],
    responses=responses({200: ("The execution", ExecutionView)}, 404),
)
def get_execution(execution_id: str) -> Response[str]:
    """An execution the caller created (or any, for admin)."""
    return json_response(200, execution_service().get(_principal(), execution_id).public_view())


@app.post(
    "/v1/admin/keys", tags=["admin"], responses=responses({201: ("The new key, shown once", CreatedKey)}, 413, 422)
)
def create_api_key(request: Annotated[CreateKeyRequest, Body()]) -> Response[str]:
    """Issue an API key; the key is in this answer only."""
    require_admin(_principal())
    created = create_key(api_key_store(), request)
    return json_response(201, created.model_dump(), {"Cache-Control": "no-store"})


@app.get("/v1/admin/keys", tags=["admin"], responses=responses({200: ("A page of keys", KeyList)}, 400))
def list_api_keys() -> Response[str]:
    """Issued keys, paginated with `limit` and `cursor`."""
    require_admin(_principal())
    params = app.current_event.query_string_parameters or {}
    return json_response(200, list_keys(api_key_store(), parse_limit(params.get("limit")), params.get("cursor")))


@app.delete("/v1/admin/keys/<key_id>", tags=["admin"], responses=responses({204: ("Revoked", None)}, 404))
def revoke_api_key(key_id: str) -> Response[str]:
    """Revoke a key (effective within the authorizer cache TTL)."""
    require_admin(_principal())
    revoke_key(api_key_store(), key_id)
    return Response(status_code=204, body="")


@app.get(
    "/v1/admin/health",
    tags=["admin"],
    responses=responses({200: ("Healthy or degraded", HealthView), 503: ("Unhealthy", HealthView)}),
)
def get_admin_health() -> Response[str]:
    """Health with the error class of each failing check."""
    require_admin(_principal())
    report = health_report(run_checks(health_checks(), get_settings().health_check_timeout_s), detailed=True)
    return json_response(503 if report["status"] == "unhealthy" else 200, report)


@app.exception_handler(errors.ProblemError)
def handle_problem(error: errors.ProblemError) -> Response[str]:
    return problem_response(error, _request_id())


@app.exception_handler(RequestValidationError)
def handle_request_validation(error: RequestValidationError) -> Response[str]:
    return problem_response(
        errors.ValidationFailed(errors.validation_errors_from_pydantic(error.errors())), _request_id()
    )


@app.not_found
def handle_not_found(_: Exception) -> Response[str]:
    return problem_response(errors.NotFound("No such route."), _request_id())


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error")
    metrics.add_metric(name="UnhandledErrors", unit="Count", value=1)
    return problem_response(errors.InternalError(), _request_id())


def _report_aws_calls(resource: str, counts: dict[str, int]) -> None:
    """The round trips this request cost, as a metric (and a log line to read them per request)."""
    dynamodb = sum(n for name, n in counts.items() if name.startswith("dynamodb."))
    metrics.add_metric(name="DynamoDBCallsPerRequest", unit="Count", value=dynamodb)
    logger.info("aws calls", extra={"resource": resource, "aws_calls": counts, "dynamodb_calls": dynamodb})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    aws.take_call_counts()
    response = app.resolve(event, context)
    _report_aws_calls(str(event.get("resource")), aws.take_call_counts())
    request_id = (event.get("requestContext") or {}).get("requestId") or ""
    return with_request_id(response, request_id)
