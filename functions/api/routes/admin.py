"""Admin: API keys, dead letters, the audit trail and detailed health."""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from cmdgate.admin import (
    CreatedKey,
    CreatedSigningSecret,
    CreateKeyRequest,
    RecoverStateRequest,
    RedriveRequest,
    SigningSecretRequest,
    create_key,
    list_keys,
    require_admin,
    revoke_key,
    rotate_signing_secret,
)
from cmdgate.api_docs import (
    AuditAction,
    AuditPage,
    AuditPrincipal,
    Cursor,
    DeadLetterList,
    HealthView,
    KeyId,
    KeyList,
    Limit,
    RecoveryResult,
    RedriveResult,
    Since,
    responses,
)
from cmdgate.audit import parse_since
from cmdgate.http import json_response
from cmdgate.pagination import decode_cursor, encode_cursor, parse_limit
from routes.health import health_answer
from routes.request import audit_stamp, principal, remaining_s
from routes.services import services

router = APIGatewayRouter()
RECOVERY_STEP_S = 15.0  # one recovery call's work: well inside API Gateway's 29 s
RECOVERY_MARGIN_S = 8.0  # kept to answer, and for the revision being read when the step ends


@router.post(
    "/v1/admin/keys",
    tags=["admin"],
    operation_id="createKey",
    responses=responses({201: ("The new key, shown once", CreatedKey)}, 400, 413, 415, 422),
)
def create_api_key(request: Annotated[CreateKeyRequest, Body()]) -> Response[str]:
    """Issue an API key; the key is in this answer only."""
    require_admin(principal(router))
    created = create_key(services().api_keys, request)
    details = {"key_id": created.key_id, "name": request.name, "permissions": list(request.permissions)}
    services().audit_log.record(audit_stamp(router, "key.created"), created.key_id, details)
    return json_response(201, created.model_dump(), {"Cache-Control": "no-store"})


@router.get(
    "/v1/admin/keys",
    tags=["admin"],
    operation_id="listKeys",
    responses=responses({200: ("A page of keys", KeyList)}, 400),
)
def list_api_keys(limit: Limit = None, cursor: Cursor = None) -> Response[str]:
    """Issued keys, paginated with `limit` and `cursor`."""
    require_admin(principal(router))
    return json_response(200, list_keys(services().api_keys, parse_limit(limit), cursor))


@router.delete(
    "/v1/admin/keys/<key_id>",
    tags=["admin"],
    operation_id="revokeKey",
    responses=responses({204: ("Revoked", None)}),
)
def revoke_api_key(key_id: KeyId) -> Response[str]:
    """Revoke a key (effective within the authorizer cache TTL)."""
    require_admin(principal(router))
    revoke_key(services().api_keys, key_id)
    services().audit_log.record(audit_stamp(router, "key.revoked"), key_id, {"key_id": key_id})
    return Response(status_code=204, body="")


@router.post(
    "/v1/admin/signing-secrets",
    tags=["admin"],
    operation_id="rotateSigningSecret",
    responses=responses({201: ("The new signing secret, shown once", CreatedSigningSecret)}, 400, 409, 413, 415, 422),
)
def rotate_callback_signing_secret(request: Annotated[SigningSecretRequest, Body()]) -> Response[str]:
    """Create or rotate a principal's callback signing secret; during a rotation both secrets sign."""
    require_admin(principal(router))
    created = rotate_signing_secret(services().signing_secrets, request)
    details = {"principal_id": created.principal_id, "secret_id": created.secret_id}  # never the secret
    services().audit_log.record(audit_stamp(router, "signing_secret.rotated"), created.principal_id, details)
    return json_response(201, created.model_dump(), {"Cache-Control": "no-store"})


@router.get(
    "/v1/admin/dlq",
    tags=["admin"],
    operation_id="listDeadLetters",
    responses=responses({200: ("Dead-lettered executions", DeadLetterList)}, 400),
)
def list_dead_letters(limit: Limit = None, cursor: Cursor = None) -> Response[str]:
    """Dead-lettered executions, oldest first, paginated."""
    require_admin(principal(router))
    start = decode_cursor(cursor, frozenset({"execution_id", "status", "created_at"}))
    executions, last = services().executions.dead_letters(parse_limit(limit), start)
    return json_response(200, {"executions": [e.public_view() for e in executions], "next_cursor": encode_cursor(last)})


@router.post(
    "/v1/admin/dlq/redrive",
    tags=["admin"],
    operation_id="redriveDeadLetters",
    responses=responses({200: ("Redriven and skipped ids", RedriveResult)}, 400, 413, 415, 422),
)
def redrive_dead_letters(request: Annotated[RedriveRequest, Body()]) -> Response[str]:
    """Give each dead-lettered execution exactly one new attempt, even when two redrives race."""
    require_admin(principal(router))
    outcome = services().executions.redrive(request.execution_ids)
    if outcome["redriven"]:
        services().audit_log.record(audit_stamp(router, "dlq.redriven"), "dlq", dict(outcome))
    return json_response(200, outcome)


@router.get(
    "/v1/admin/audit",
    tags=["admin"],
    operation_id="listAudit",
    responses=responses({200: ("Audit entries, oldest first", AuditPage)}, 400),
)
def list_audit(
    principal_id: AuditPrincipal = None,
    action: AuditAction = None,
    since: Since = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response[str]:
    """Who did what: keys, command runs, state writes, redrives and webhooks, with request id and source IP."""
    require_admin(principal(router))
    trail = services().audit_trail
    entries, next_cursor = trail.page(
        since=parse_since(since, time.time()),
        limit=parse_limit(limit),
        cursor=cursor,
        principal=principal_id,
        action=action,
    )
    return json_response(200, {"entries": entries, "next_cursor": next_cursor})


@router.post(
    "/v1/admin/state/recover",
    tags=["admin"],
    operation_id="recoverState",
    responses=responses({200: ("One bounded step of the recovery", RecoveryResult)}, 400, 413, 415, 422, 503),
)
def recover_state(request: Annotated[RecoverStateRequest, Body()]) -> Response[str]:
    """Rebuild lost registers, version logs and shard directory entries from this deployment's gists.

    Bounded by the request's time: call again with `next` until `done` (`cmdgate state recover`)."""
    require_admin(principal(router))
    budget_s = max(1.0, min(RECOVERY_STEP_S, remaining_s(router) - RECOVERY_MARGIN_S))
    report = services().state_recovery.run(
        namespaces=frozenset(request.namespaces) if request.namespaces is not None else None,
        gists=request.gists,
        skip=request.skip,
        max_revisions=request.max_revisions,
        budget_s=budget_s,
    )
    return json_response(200, report.view(), {"Cache-Control": "no-store"})


@router.get(
    "/v1/admin/health",
    tags=["admin"],
    operation_id="getAdminHealth",
    responses=responses({200: ("Healthy or degraded", HealthView), 503: ("Unhealthy", HealthView)}),
)
def get_admin_health() -> Response[str]:
    """Health with the error class of each failing check."""
    require_admin(principal(router))
    return health_answer(detailed=True)
