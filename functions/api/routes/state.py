"""State keys: versioned JSON values with conditional writes, merge patches, history and restore."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel

from cmdgate.api_docs import (
    ETAG,
    STATE_METADATA,
    STATE_VERSION,
    Cursor,
    IfMatch,
    IfNoneMatchRead,
    IfNoneMatchWrite,
    Limit,
    StateHistory,
    StateKey,
    Version,
    responses,
)
from cmdgate.authz import StateAccess, authorize_state, may
from cmdgate.http import json_response, required_json_body
from cmdgate.pagination import encode_cursor, parse_limit
from cmdgate.state.http import (
    etag,
    history_cursor,
    none_match_hits,
    parse_preconditions,
    parse_version,
    restore_version,
    state_headers,
)
from cmdgate.state.model import Register
from cmdgate.state.service import StateService
from routes.request import audit_stamp, principal, remaining_s
from routes.services import services

router = APIGatewayRouter()
# What PATCH and restore may refuse, and the headers of their answers (200 with the value, or 204).
WRITE_REFUSALS = (400, 409, 412, 413, 415, 422, 503)
WRITTEN_HEADERS = {200: STATE_METADATA, 204: STATE_METADATA}


def _written(what: str) -> dict[int, tuple[str, type[BaseModel] | None]]:
    return {200: (what, None), 204: (f"{what}; the caller may not read the value", None)}


def _state_authorized(key: str, access: StateAccess) -> None:
    authorize_state(principal(router), key, access)


def _state_written(status: int, key: str, register: Register) -> Response[str]:
    # A writer that may not read gets the new version's headers, never the value.
    if not may(principal(router), "state.read", key):
        return Response(status_code=204, body="", headers=state_headers(register))
    return _state_value(status, register)


def _state_value(status: int, register: Register) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=register.value_json, headers=state_headers(register)
    )


def _writer() -> StateService:
    return services().state_service(lambda: remaining_s(router), audit_stamp(router))


@router.get(
    "/v1/state/<key>",
    tags=["state"],
    operation_id="getState",
    responses=responses(
        {200: ("The value", None), 304: ("Not modified", None)},
        400,
        headers={200: {**ETAG, **STATE_VERSION}, 304: STATE_METADATA},
    ),
)
def get_state(key: StateKey, version: Version = None, if_none_match: IfNoneMatchRead = None) -> Response[str]:
    """A key's value (the representation is the value; version and sync progress travel in headers)."""
    _state_authorized(key, "read")
    service, wanted = services().state_service(), parse_version(version)
    if wanted is not None:
        entry = service.get_version(key, wanted)
        return json_response(200, entry.value, {"ETag": etag(entry.version), "State-Version": str(entry.version)})
    register = service.get(key)
    if none_match_hits(if_none_match, register.version):
        return Response(status_code=304, body="", headers=state_headers(register))
    return _state_value(200, register)


@router.put(
    "/v1/state/<key>",
    tags=["state"],
    operation_id="putState",
    responses=responses(
        {200: ("Replaced", None), 201: ("Created", None)},
        *(400, 409, 412, 413, 415, 422, 428, 503),
        headers={200: STATE_METADATA, 201: STATE_METADATA},
    ),
)
def put_state(key: StateKey, if_match: IfMatch = None, if_none_match: IfNoneMatchWrite = None) -> Response[str]:
    """Create (If-None-Match: *) or replace (If-Match) a key's value."""
    _state_authorized(key, "write")
    conditions = parse_preconditions(if_match, if_none_match)
    value = required_json_body(router.current_event.decoded_body)
    register, created = _writer().put(key, value, conditions)
    return _state_value(201 if created else 200, register)


@router.patch(
    "/v1/state/<key>",
    tags=["state"],
    operation_id="patchState",
    responses=responses(_written("Patched"), *WRITE_REFUSALS, 428, headers=WRITTEN_HEADERS),
)
def patch_state(key: StateKey, if_match: IfMatch = None) -> Response[str]:
    """Apply an RFC 7396 merge patch optimistically: retried on a lost race, then 409 STATE_CONTENTION."""
    _state_authorized(key, "write")
    conditions = parse_preconditions(if_match, None)
    patch = required_json_body(router.current_event.decoded_body)
    return _state_written(200, key, _writer().patch(key, patch, conditions))


@router.delete(
    "/v1/state/<key>",
    tags=["state"],
    operation_id="deleteState",
    responses=responses({204: ("Deleted", None)}, 400, 409, 412, 428, 503, headers={204: STATE_VERSION}),
)
def delete_state(key: StateKey, if_match: IfMatch = None) -> Response[str]:
    """Delete a key (If-Match required); its gist keeps the history."""
    _state_authorized(key, "write")
    register = _writer().delete(key, parse_preconditions(if_match, None))
    return Response(status_code=204, body="", headers={"State-Version": str(register.version)})


@router.get(
    "/v1/state/<key>/history",
    tags=["state"],
    operation_id="getStateHistory",
    responses=responses({200: ("Versions, newest first", StateHistory)}, 400),
)
def get_state_history(key: StateKey, limit: Limit = None, cursor: Cursor = None) -> Response[str]:
    """Retained versions with the gist revision each reached."""
    _state_authorized(key, "read")
    entries, last = services().state_service().history(key, parse_limit(limit), history_cursor(cursor))
    body = {
        "versions": [{"version": e.version, "updated_at": e.updated_at, "revision": e.revision} for e in entries],
        "next_cursor": encode_cursor(last),
    }
    return json_response(200, body)


@router.post(
    "/v1/state/<key>/restore",
    tags=["state"],
    operation_id="restoreState",
    responses=responses(_written("Restored as a new version"), *WRITE_REFUSALS, headers=WRITTEN_HEADERS),
)
def restore_state(key: StateKey) -> Response[str]:
    """Write version N's value as a new version."""
    _state_authorized(key, "write")
    version = restore_version(required_json_body(router.current_event.decoded_body))
    return _state_written(200, key, _writer().restore(key, version))
