"""The catalogue: list the commands the caller may run, and run one (sync, async, idempotent)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from cmdgate.api_docs import (
    IDEMPOTENCY_RETENTION_S,
    REPLAYED,
    Accepted,
    CallbackUrl,
    CommandList,
    CommandName,
    Cursor,
    IdempotencyKey,
    Limit,
    Prefer,
    RunResult,
    responses,
)
from cmdgate.api_docs import LOCATION as LOCATION_HEADER
from cmdgate.callbacks import parse_callback_url
from cmdgate.executions.service import keyed_execution_id
from cmdgate.http import http_response, json_response, prefers_async
from cmdgate.idempotency import parse_idempotency_key, request_fingerprint, require_key_if_needed
from cmdgate.pagination import decode_cursor, encode_cursor, parse_limit
from routes.request import audit_stamp, principal
from routes.services import services

router = APIGatewayRouter()


@router.get(
    "/v1/commands",
    tags=["commands"],
    operation_id="listCommands",
    responses=responses({200: ("Commands the caller may run", CommandList)}, 400),
)
def list_commands(limit: Limit = None, cursor: Cursor = None) -> Response[str]:
    """The commands the caller may run."""
    start = decode_cursor(cursor, frozenset({"after"}))
    after = start["after"] if start else None
    commands, last = services().executions.list_commands(principal(router), parse_limit(limit), after)
    return json_response(200, {"commands": commands, "next_cursor": encode_cursor({"after": last} if last else None)})


@router.post(
    "/v1/commands/<name>",
    tags=["commands"],
    operation_id="runCommand",
    openapi_extensions={"x-idempotency-retention-seconds": IDEMPOTENCY_RETENTION_S},
    responses=responses(
        {200: ("Sync run succeeded", RunResult), 202: ("Queued (Prefer: respond-async)", Accepted)},
        *(400, 409, 412, 413, 415, 422, 428, 500, 503, 504),
        headers={202: LOCATION_HEADER},
        every=REPLAYED,
    ),
)
def run_command(
    name: CommandName, idempotency_key: IdempotencyKey = None, prefer: Prefer = None, callback_url: CallbackUrl = None
) -> Response[str]:
    """Run a command sync, or queue it when `Prefer: respond-async`; Idempotency-Key makes it run once;
    `Callback-Url` receives the signed outcome when the run ends."""
    event, settings = router.current_event, services().settings
    caller, service = principal(router), services().executions
    key = parse_idempotency_key(idempotency_key)
    callback = parse_callback_url(
        callback_url,
        settings.http_request_allowed_hosts,
        lambda: services().signing_secrets.has_secret(caller.principal_id),
    )
    prepared = service.prepare(
        caller,
        name,
        event.decoded_body,
        prefer_async=prefers_async(prefer),
        callback_url=callback,
    )
    require_key_if_needed(key, prepared.spec.idempotency, name)
    stamp = audit_stamp(router, idempotency_key=key)  # the run's record is its audit entry
    if key is None:
        return http_response(service.start(caller, prepared, stamp).to_http(event.request_context.request_id))
    requests = services().idempotent_requests
    requests.register_lambda_context(router.lambda_context)
    fingerprint = request_fingerprint(event.http_method, event.path, prepared.raw_params)
    # The same execution however often the key is retried, even once its stored answer was lost.
    execution_id = keyed_execution_id(caller.principal_id, key, fingerprint)
    stored = requests.run(
        caller.principal_id,
        key,
        fingerprint,
        lambda: service.start(caller, prepared, stamp, execution_id).to_http(event.request_context.request_id),
        retry_after_s=settings.idempotency_retry_after_s,
    )
    return http_response(stored)
