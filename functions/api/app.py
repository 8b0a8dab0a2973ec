"""API function: routes -> the layer's services -> HTTP responses."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cmdgate import errors
from cmdgate.admin import CreateKeyRequest, create_key, list_keys, require_admin, revoke_key
from cmdgate.auth import Principal
from cmdgate.config import get_settings
from cmdgate.health import health_report, run_checks
from cmdgate.http import header, http_response, json_response, prefers_async, problem_response, with_request_id
from cmdgate.idempotency import IdempotencyKeyMissing, parse_idempotency_key, request_fingerprint
from cmdgate.pagination import parse_limit
from cmdgate.wiring import api_key_store, execution_service, health_checks, idempotent_requests

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
API_VERSION = "1.0.0"


def _request_id() -> str | None:
    return app.current_event.request_context.request_id


def _principal() -> Principal:
    principal = Principal.from_authorizer_context(app.current_event.request_context.authorizer.raw_event)
    if principal is None:
        raise errors.Unauthorized("No authenticated principal.")
    return principal


@app.get("/v1/health")
def get_health() -> Response[str]:
    """Liveness of the dependencies, without error details."""
    report = health_report(run_checks(health_checks(), get_settings().health_check_timeout_s), detailed=False)
    return json_response(503 if report["status"] == "unhealthy" else 200, report)


@app.get("/v1/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    """The OpenAPI description of this API, generated from the routes."""
    return Response(
        status_code=200,
        content_type="application/json",
        body=app.get_openapi_json_schema(title="cmdgate", version=API_VERSION, openapi_version="3.1.0"),
    )


@app.get("/v1/commands")
def list_commands() -> Response[str]:
    """The commands the caller may run."""
    return json_response(200, {"commands": execution_service().list_commands(_principal())})


@app.post("/v1/commands/<name>")
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


@app.get("/v1/executions/<execution_id>")
def get_execution(execution_id: str) -> Response[str]:
    """An execution the caller created (or any, for admin)."""
    return json_response(200, execution_service().get(_principal(), execution_id).public_view())


@app.post("/v1/admin/keys")
def create_api_key(request: Annotated[CreateKeyRequest, Body()]) -> Response[str]:
    """Issue an API key; the key is in this answer only."""
    require_admin(_principal())
    created = create_key(api_key_store(), request)
    return json_response(201, created.model_dump(), {"Cache-Control": "no-store"})


@app.get("/v1/admin/keys")
def list_api_keys() -> Response[str]:
    """Issued keys, paginated with `limit` and `cursor`."""
    require_admin(_principal())
    params = app.current_event.query_string_parameters or {}
    return json_response(200, list_keys(api_key_store(), parse_limit(params.get("limit")), params.get("cursor")))


@app.delete("/v1/admin/keys/<key_id>")
def revoke_api_key(key_id: str) -> Response[str]:
    """Revoke a key (effective within the authorizer cache TTL)."""
    require_admin(_principal())
    revoke_key(api_key_store(), key_id)
    return Response(status_code=204, body="")


@app.get("/v1/admin/health")
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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    request_id = (event.get("requestContext") or {}).get("requestId") or ""
    return with_request_id(response, request_id)
