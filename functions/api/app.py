"""API function: routes -> the layer's services -> HTTP responses."""

from __future__ import annotations

import json
import re
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
from cmdgate.admin import CreatedKey, CreateKeyRequest, RedriveRequest, create_key, list_keys, require_admin, revoke_key
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
from cmdgate.authz import authorize, may
from cmdgate.body import refuse_bad_body
from cmdgate.health import health_report, run_checks
from cmdgate.http import (
    header,
    http_response,
    json_response,
    parse_json,
    prefers_async,
    problem_response,
    with_request_id,
)
from cmdgate.idempotency import IdempotencyKeyMissing, parse_idempotency_key, request_fingerprint
from cmdgate.pagination import decode_cursor, encode_cursor, parse_limit
from cmdgate.ratelimit import RateLimited
from cmdgate.state.http import etag, history_cursor, none_match_hits, parse_preconditions, state_headers
from cmdgate.state.model import Register
from cmdgate.wiring import services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)
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
    report = health_report(
        run_checks(services().health_checks(), services().settings.health_check_timeout_s), detailed=False
    )
    return json_response(503 if report["status"] == "unhealthy" else 200, report)


def rate_limit(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
    """Every authenticated request takes from its principal's bucket (and a command's own) and carries the fields."""
    principal = Principal.from_authorizer_context(app.current_event.request_context.authorizer.raw_event)
    if principal is None:  # the open routes (health, openapi)
        return next_middleware(app)
    limiter = services().rate_limiter
    name = (app.current_event.path_parameters or {}).get("name")
    # Only a real command that declares a limit adds a bucket: made-up names mint nothing.
    is_run = app.current_event.resource == "/v1/commands/{name}"
    own = services().executions.own_rate_limit(name) if is_run and name else None
    try:
        decision = limiter.admit(principal, own)
    except RateLimited as refused:
        limiter.record(principal, refused.status)
        return problem_response(refused, _request_id())
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
    commands, last = services().executions.list_commands(
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
        415,
        422,
        500,
        503,
        504,
    ),
)
def run_command(name: str) -> Response[str]:
    """Run a command sync, or queue it when `Prefer: respond-async`; Idempotency-Key makes it run once."""
    event, settings = app.current_event, services().settings
    body = event.body
    principal, service = _principal(), services().executions
    key = parse_idempotency_key(header(event.headers, "Idempotency-Key"))
    prepared = service.prepare(principal, name, body, prefer_async=prefers_async(header(event.headers, "Prefer")))
    if key is None:
        if prepared.spec.idempotency == "required":
            raise IdempotencyKeyMissing(f"Command {name!r} requires an Idempotency-Key header.")
        return http_response(service.start(principal, prepared).to_http(_request_id()))
    requests = services().idempotent_requests
    requests.register_lambda_context(app.lambda_context)
    stored = requests.run(
        principal.principal_id,
        key,
        request_fingerprint(event.http_method, event.path, prepared.raw_params),
        lambda: service.start(principal, prepared).to_http(_request_id()),
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
    return json_response(200, services().executions.get(_principal(), execution_id).public_view())


@app.post(
    "/v1/admin/keys",
    tags=["admin"],
    responses=responses({201: ("The new key, shown once", CreatedKey)}, 400, 413, 415, 422),
)
def create_api_key(request: Annotated[CreateKeyRequest, Body()]) -> Response[str]:
    """Issue an API key; the key is in this answer only."""
    require_admin(_principal())
    created = create_key(services().api_keys, request)
    return json_response(201, created.model_dump(), {"Cache-Control": "no-store"})


@app.get("/v1/admin/keys", tags=["admin"], responses=responses({200: ("A page of keys", KeyList)}, 400))
def list_api_keys() -> Response[str]:
    """Issued keys, paginated with `limit` and `cursor`."""
    require_admin(_principal())
    params = app.current_event.query_string_parameters or {}
    return json_response(200, list_keys(services().api_keys, parse_limit(params.get("limit")), params.get("cursor")))


@app.delete("/v1/admin/keys/<key_id>", tags=["admin"], responses=responses({204: ("Revoked", None)}, 404))
def revoke_api_key(key_id: str) -> Response[str]:
    """Revoke a key (effective within the authorizer cache TTL)."""
    require_admin(_principal())
    revoke_key(services().api_keys, key_id)
    return Response(status_code=204, body="")


@app.get("/v1/admin/dlq", tags=["admin"], responses=responses({200: ("Dead-lettered executions", None)}, 400))
def list_dead_letters() -> Response[str]:
    """Dead-lettered executions, oldest first, paginated."""
    require_admin(_principal())
    params = app.current_event.query_string_parameters or {}
    start = decode_cursor(params.get("cursor"), frozenset({"execution_id", "status", "created_at"}))
    executions, last = services().executions.dead_letters(parse_limit(params.get("limit")), start)
    return json_response(200, {"executions": [e.public_view() for e in executions], "next_cursor": encode_cursor(last)})


@app.post(
    "/v1/admin/dlq/redrive",
    tags=["admin"],
    responses=responses({200: ("Redriven and skipped ids", None)}, 400, 413, 415, 422),
)
def redrive_dead_letters(request: Annotated[RedriveRequest, Body()]) -> Response[str]:
    """Give each dead-lettered execution exactly one new attempt, even when two redrives race."""
    require_admin(_principal())
    return json_response(200, services().executions.redrive(request.execution_ids))


@app.get(
    "/v1/admin/health",
    tags=["admin"],
    responses=responses({200: ("Healthy or degraded", HealthView), 503: ("Unhealthy", HealthView)}),
)
def get_admin_health() -> Response[str]:
    """Health with the error class of each failing check."""
    require_admin(_principal())
    report = health_report(
        run_checks(services().health_checks(), services().settings.health_check_timeout_s), detailed=True
    )
    return json_response(503 if report["status"] == "unhealthy" else 200, report)


def _state_authorized(key: str, access: str) -> None:
    authorize(_principal(), "state.read" if access == "read" else "state.write", key)


def _state_body(max_bytes: int) -> Any:
    body = app.current_event.body
    if body is None or not body.strip():
        raise errors.InvalidJson("The request body must be a JSON value.")
    if len(body.encode("utf-8")) > max_bytes:
        raise errors.PayloadTooLarge(f"The request body is over {max_bytes} bytes.")
    return parse_json(body)


def _state_written(status: int, key: str, register: Register) -> Response[str]:
    # A writer that may not read gets the new version's headers, never the value.
    if not may(_principal(), "state.read", key):
        return Response(status_code=204, body="", headers=state_headers(register))
    return _state_value(status, register)


def _state_value(status: int, register: Register) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=register.value_json, headers=state_headers(register)
    )


def _remaining_s() -> float:
    return float(app.lambda_context.get_remaining_time_in_millis()) / 1000


@app.get("/v1/state/<key>", tags=["state"], responses=responses({200: ("The value", None)}, 400, 404))
def get_state(key: str) -> Response[str]:
    """A key's value (the representation is the value; version and sync progress travel in headers)."""
    _state_authorized(key, "read")
    event, service = app.current_event, services().state_service()
    version = (event.query_string_parameters or {}).get("version")
    if version is not None:
        if not re.fullmatch(r"[0-9]{1,12}", version) or not 0 < int(version) < 10**12:
            raise errors.BadRequest("version must be a positive integer.")
        entry = service.get_version(key, int(version))
        return json_response(200, entry.value, {"ETag": etag(entry.version), "State-Version": str(entry.version)})
    register = service.get(key)
    if none_match_hits(header(event.headers, "If-None-Match"), register.version):
        return Response(status_code=304, body="", headers=state_headers(register))
    return _state_value(200, register)


@app.put(
    "/v1/state/<key>",
    tags=["state"],
    responses=responses({200: ("Replaced", None), 201: ("Created", None)}, 400, 404, 412, 413, 415, 428),
)
def put_state(key: str) -> Response[str]:
    """Create (If-None-Match: *) or replace (If-Match) a key's value."""
    _state_authorized(key, "write")
    headers = app.current_event.headers
    conditions = parse_preconditions(header(headers, "If-Match"), header(headers, "If-None-Match"))
    value = _state_body(services().settings.max_state_body_bytes)
    register, created = services().state_service(_remaining_s).put(key, value, conditions)
    return _state_value(201 if created else 200, register)


@app.patch(
    "/v1/state/<key>",
    tags=["state"],
    responses=responses({200: ("Patched", None)}, 400, 404, 409, 412, 413, 415, 422, 503),
)
def patch_state(key: str) -> Response[str]:
    """Apply an RFC 7396 merge patch under the key's lock."""
    _state_authorized(key, "write")
    headers = app.current_event.headers
    conditions = parse_preconditions(header(headers, "If-Match"), None)
    patch = _state_body(services().settings.max_state_body_bytes)
    return _state_written(200, key, services().state_service(_remaining_s).patch(key, patch, conditions))


@app.delete("/v1/state/<key>", tags=["state"], responses=responses({204: ("Deleted", None)}, 400, 412, 428))
def delete_state(key: str) -> Response[str]:
    """Delete a key (If-Match required); its gist keeps the history."""
    _state_authorized(key, "write")
    headers = app.current_event.headers
    register = (
        services().state_service(_remaining_s).delete(key, parse_preconditions(header(headers, "If-Match"), None))
    )
    return Response(status_code=204, body="", headers={"State-Version": str(register.version)})


@app.get(
    "/v1/state/<key>/history", tags=["state"], responses=responses({200: ("Versions, newest first", None)}, 400, 404)
)
def get_state_history(key: str) -> Response[str]:
    """Retained versions with the gist revision each reached."""
    _state_authorized(key, "read")
    params = app.current_event.query_string_parameters or {}
    entries, last = (
        services().state_service().history(key, parse_limit(params.get("limit")), history_cursor(params.get("cursor")))
    )
    body = {
        "versions": [{"version": e.version, "updated_at": e.updated_at, "revision": e.revision} for e in entries],
        "next_cursor": encode_cursor(last),
    }
    return json_response(200, body)


@app.post(
    "/v1/state/<key>/restore",
    tags=["state"],
    responses=responses({200: ("Restored as a new version", None)}, 400, 404, 412, 413, 415, 422),
)
def restore_state(key: str) -> Response[str]:
    """Write version N's value as a new version."""
    _state_authorized(key, "write")
    body = _state_body(1024)
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise errors.ValidationFailed([{"loc": ["body", "version"], "msg": "a positive integer"}])
    return _state_written(200, key, services().state_service(_remaining_s).restore(key, version))


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
    takes, retried = services().rate_limiter.take_counts()  # this environment's totals so far
    logger.info(
        "aws calls",
        extra={
            "resource": resource,
            "aws_calls": counts,
            "dynamodb_calls": dynamodb,
            "rate_limit_takes": takes,
            "rate_limit_retried_takes": retried,
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    aws.take_call_counts()
    response = refuse_bad_body(event, services().settings) or app.resolve(event, context)
    _report_aws_calls(f"{event.get('httpMethod')} {event.get('resource')}", aws.take_call_counts())
    request_id = (event.get("requestContext") or {}).get("requestId") or ""
    return with_request_id(response, request_id)
