"""What the OpenAPI description says: parameters, response models, headers and problem responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cmdgate.audit.stamp import ACTIONS as AUDIT_ACTIONS
from cmdgate.body import MERGE_PATCH
from cmdgate.errors import PROBLEM_CONTENT_TYPE
from cmdgate.state.model import KEY_PATTERN

API_TITLE = "cmdgate"
API_VERSION = "1.0.0"
API_DESCRIPTION = """Run a catalogue of commands over HTTP.

Every error is RFC 9457 problem+json with a stable `code`. `POST /v1/commands/{name}` honours
`Idempotency-Key` (a Structured Field string or the bare form, 1-255 printable ASCII characters):
keys are scoped to the caller and kept for 24 hours; a retry with the same key and request gets the
original answer again with `Idempotent-Replayed: true`. Every authenticated answer carries the
caller's limit in the IETF `RateLimit-Policy` and `RateLimit` fields."""

IDEMPOTENCY_RETENTION_S = 86400


class _Documented(BaseModel):
    """A model of the OpenAPI description. Built on first use (`defer_build`), not at import: most of them
    only ever describe answers in the document, and building all of them cost every cold start of the
    api function about a fifth of the `import boto3` floor."""

    model_config = ConfigDict(defer_build=True)


class Problem(_Documented):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str


class CommandDescription(_Documented):
    """A command the caller may run."""

    name: str
    description: str
    params_schema: dict[str, Any]
    permission: str
    idempotency: Literal["required", "optional"]
    modes: list[Literal["sync", "async"]]
    timeout_s: float
    retry_safe: bool = Field(description="An attempt lost mid-run may be made again (effects keyed by the id).")


class CommandList(_Documented):
    """`GET /v1/commands`."""

    commands: list[CommandDescription]
    next_cursor: str | None = None


class RunResult(_Documented):
    """A sync run that succeeded."""

    execution_id: str
    command: str
    status: Literal["succeeded"]
    result: Any = None


class Accepted(_Documented):
    """An async run was queued."""

    execution_id: str
    status: Literal["queued"]


class WebhookAccepted(_Documented):
    """A verified webhook delivery: the run it started (the same one for a redelivery), or why none."""

    delivery_id: str
    event: str
    outcome: Literal["started", "unmapped", "refused"]
    execution_id: str | None = Field(default=None, description="The run it started (`started`).")
    status: str | None = Field(default=None, description="That run's status when answered (`started`).")
    code: str | None = Field(default=None, description="Why the run was refused (`refused`).")


class ExecutionErrorView(_Documented):
    """Why an execution failed."""

    code: str
    detail: str
    status: int


class AttemptErrorView(_Documented):
    """How one attempt failed."""

    attempt: int
    code: str
    detail: str
    at: str


class CallbackView(_Documented):
    """The delivery of a run's completion callback."""

    status: Literal["pending", "delivered", "abandoned"]
    attempts: int
    last_error: str | None = None
    delivered_at: str | None = None


class ExecutionView(_Documented):
    """`GET /v1/executions/{id}`."""

    execution_id: str
    command: str
    status: Literal["queued", "running", "succeeded", "failed", "dead_lettered", "cancelled"]
    attempts: int
    result: Any = None
    error: ExecutionErrorView | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    next_attempt_at: str | None = Field(default=None, description="When a retried execution's next attempt is due.")
    attempt_errors: list[AttemptErrorView] = Field(default_factory=list, description="Each failed attempt's error.")
    cancel_requested: bool = Field(default=False, description="A cancel was asked for while it ran.")
    callback: CallbackView | None = Field(default=None, description="Present when the run named a `Callback-Url`.")
    parent_execution_id: str | None = Field(default=None, description="The run this follow-up follows.")
    chain_depth: int | None = Field(
        default=None, description="Follow-ups between this run and the one a caller started."
    )


class CheckView(_Documented):
    """One dependency check."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "failing"]
    latency_ms: float


class HealthView(_Documented):
    """`GET /v1/health`."""

    status: Literal["healthy", "degraded", "unhealthy"]
    checks: dict[str, CheckView]


class DeadLetterList(_Documented):
    """`GET /v1/admin/dlq`."""

    executions: list[ExecutionView]
    next_cursor: str | None = None


class RedriveResult(_Documented):
    """`POST /v1/admin/dlq/redrive`."""

    redriven: list[str]
    skipped: list[str]


class RecoveryNext(_Documented):
    """Where the next recovery call starts."""

    gists: list[str]
    skip: int


class RecoveryResult(_Documented):
    """`POST /v1/admin/state/recover`: one bounded step of a recovery from the gists."""

    done: bool
    next: RecoveryNext | None = Field(description="Send it back (with the same namespaces) until `done`.")
    counts: dict[str, int] = Field(description="keys_recovered, tombstones_recovered, versions_logged, ...")


class VersionView(_Documented):
    """One retained version of a state key."""

    version: int
    updated_at: str
    revision: str | None = Field(default=None, description="The gist revision this version reached, if any.")


class StateHistory(_Documented):
    """`GET /v1/state/{key}/history`."""

    versions: list[VersionView]
    next_cursor: str | None = None


class RestoreRequest(_Documented):
    """Body of `POST /v1/state/{key}/restore` (documented here; cmdgate.state.http checks it)."""

    version: int = Field(ge=1)


class KeyView(_Documented):
    """An issued API key (never the key or its hash)."""

    key_id: str
    name: str
    permissions: list[str]
    rate_limit: dict[str, int]
    status: str
    created_at: int
    expires_at: int | None = None


class KeyList(_Documented):
    """`GET /v1/admin/keys`."""

    keys: list[KeyView]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class AuditEntry(_Documented):
    """One action of the audit trail; the fields after `source_ip` depend on the action."""

    model_config = ConfigDict(extra="allow")

    at: str = Field(description="RFC 3339 UTC, milliseconds.")
    action: str
    principal: str
    request_id: str
    source_ip: str
    execution_id: str | None = None
    command: str | None = None
    idempotency_key: str | None = None
    key: str | None = Field(default=None, description="The state key (state actions).")
    version: int | None = None
    target: str | None = Field(default=None, description="What an admin action acted on.")


class AuditPage(_Documented):
    """`GET /v1/admin/audit`: oldest first."""

    entries: list[AuditEntry]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page (a page may be short: follow until null)."
    )


_PROBLEM_TEXT = {
    400: "Bad request (body not JSON, bad header, parameter or cursor)",
    401: "Missing or invalid credentials",
    403: "Not permitted",
    404: "Not found",
    409: "Conflict: a request with this Idempotency-Key is still running, the key is locked, or the execution ended",
    412: "Precondition failed (If-Match / If-None-Match)",
    413: "Request body too large",
    415: "Unsupported media type (JSON bodies are application/json; a state PATCH is application/merge-patch+json)",
    422: "Parameters fail validation, or Idempotency-Key reused with another request",
    428: "Precondition required (If-Match or If-None-Match)",
    429: "Over the rate limit",
    500: "The command failed",
    502: "Gateway or upstream error",
    503: "A dependency is unavailable",
    504: "The command timed out",
}


def _field(description: str, schema: dict[str, Any] | None = None, *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


_INTEGER = {"type": "string", "pattern": "^[0-9]+$"}  # a header's value is text
REQUEST_ID = {"X-Request-Id": _field("The request id (also in problem bodies and the logs).")}
RATE_LIMIT = {
    "RateLimit": _field('The caller\'s remaining quota: `"default";r=<remaining>;t=<reset seconds>`.'),
    "RateLimit-Policy": _field('The caller\'s limit: `"default";q=<quota>;w=<window seconds>`.'),
}
RETRY_AFTER = {"Retry-After": _field("Seconds to wait before retrying.", _INTEGER)}
REPLAYED = {"Idempotent-Replayed": _field("`true` when this is the stored answer of an earlier request.")}
LOCATION = {"Location": _field("Where to poll the execution: `/v1/executions/{id}`.", required=True)}
WEBHOOK_LOCATION = {"Location": _field("The run a delivery started: `/v1/executions/{id}` (absent when none).")}
ETAG = {"ETag": _field('The strong ETag of the version: `"<version>"`.', required=True)}
STATE_VERSION = {"State-Version": _field("The version the answer describes.", _INTEGER, required=True)}
STATE_METADATA = {
    **ETAG,
    **STATE_VERSION,
    "Last-Modified": _field("When this version was written (HTTP-date).", required=True),
    "Gist-Synced-Version": _field("The newest version the gist holds.", _INTEGER, required=True),
}


def responses(
    ok: dict[int, tuple[str, type[BaseModel] | None]],
    *problems: int,
    authenticated: bool = True,
    headers: dict[int, dict[str, Any]] | None = None,
    every: dict[str, Any] | None = None,
) -> dict[int, Any]:
    """The `responses` of a route: its successes and the problem+json answers it may give, with their headers.

    `headers` adds fields to one status; `every` to every status of the route (e.g. Idempotent-Replayed).
    """
    documented: dict[int, Any] = {}
    for status, (description, model) in ok.items():
        documented[status] = {"description": description}
        if model is not None:
            documented[status]["content"] = {"application/json": {"model": model}}
        elif status not in (204, 304):
            # Any JSON (e.g. a state value): otherwise the generator documents the handler's `str`.
            documented[status]["content"] = {"application/json": {"schema": {}}}
    # 404 on every route: a path parameter the router cannot match (e.g. a control character) is "no such route".
    for status in ((401, 403, 404, 429, 502) if authenticated else (502,)) + problems:
        documented[status] = {
            "description": _PROBLEM_TEXT[status],
            "content": {PROBLEM_CONTENT_TYPE: {"model": Problem}},
        }
    for status, answer in documented.items():
        fields: dict[str, Any] = {**REQUEST_ID, **(every or {})}
        if authenticated and status not in (401, 403, 502):  # those may come from the gateway, without them
            fields.update(RATE_LIMIT)
        if status in (409, 429, 503):
            fields.update(RETRY_AFTER)
        if status == 429:
            fields["Retry-After"] = {**RETRY_AFTER["Retry-After"], "required": True}
        fields.update((headers or {}).get(status, {}))
        if status < 300:  # answered by the function (past the rate limiter, when authenticated)
            always = {**REQUEST_ID, **(RATE_LIMIT if authenticated else {})}
            fields = {**fields, **{name: {**always[name], "required": True} for name in always}}
        answer["headers"] = fields
    return documented


def schema(declared: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` that documents exactly `declared` for a parameter Powertools reads as a string.

    The constraints are documented, not enforced by Powertools: the layer checks each value and answers
    the problem with its own code (INVALID_STATE_KEY, INVALID_IDEMPOTENCY_KEY, BAD_REQUEST for a limit...),
    as before the parameters were declared; Powertools only checks that the value is one string.
    """

    def replace(generated: dict[str, Any]) -> None:
        generated.clear()
        generated.update(declared)

    return replace


ID_PATTERN = "^[A-Za-z0-9]{1,64}$"
COMMAND_NAME_PATTERN = "^[a-z][a-z0-9_.-]{0,63}$"
# Bare (1-255 printable ASCII, not starting with a quote) or a Structured Field string (cmdgate.idempotency).
IDEMPOTENCY_KEY_PATTERN = r'^(?:[!#-~][!-~]{0,254}|"(?:[ !#-\[\]-~]|\\["\\]){1,255}")$'

StateKey = Annotated[str, Path(json_schema_extra=schema({"type": "string", "pattern": f"^{KEY_PATTERN.pattern}$"}))]
ExecutionId = Annotated[str, Path(json_schema_extra=schema({"type": "string", "pattern": ID_PATTERN}))]
KeyId = Annotated[str, Path(json_schema_extra=schema({"type": "string", "pattern": ID_PATTERN}))]
WebhookSourceName = Annotated[
    str, Path(json_schema_extra=schema({"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,63}$"}))
]
CommandName = Annotated[str, Path(json_schema_extra=schema({"type": "string", "pattern": COMMAND_NAME_PATTERN}))]


def _query(description: str, declared: dict[str, Any]) -> Any:
    # pydantic takes a callable json_schema_extra too; Powertools' signature only names the dict form.
    return Query(description=description, json_schema_extra=schema(declared))  # type: ignore[arg-type]


def _header(alias: str, description: str, declared: dict[str, Any]) -> Any:  # a request header
    return Header(alias=alias, description=description, json_schema_extra=schema(declared))  # type: ignore[arg-type]


Limit = Annotated[str | None, _query("Page size (default 50).", {"type": "integer", "minimum": 1, "maximum": 100})]
Cursor = Annotated[str | None, _query("`next_cursor` of the previous page.", {"type": "string"})]
AuditPrincipal = Annotated[
    str | None,
    Query(
        alias="principal",
        description="Only this principal's actions.",
        json_schema_extra=schema({"type": "string", "minLength": 1, "maxLength": 256}),
    ),
]
AuditAction = Annotated[str | None, _query("Only this action.", {"type": "string", "enum": list(AUDIT_ACTIONS)})]
Since = Annotated[
    str | None,
    _query(
        "RFC 3339 date-time: entries at or after it (default: one day ago).", {"type": "string", "format": "date-time"}
    ),
]
_VERSION = {"type": "integer", "minimum": 1, "maximum": 10**12 - 1}
Version = Annotated[str | None, _query("Read this retained version instead of the current one.", _VERSION)]
_WAIT = {"type": "integer", "minimum": 0, "maximum": 20}
Wait = Annotated[str | None, _query("Hold the answer until the execution ends or this many seconds pass.", _WAIT)]
_IDEMPOTENCY = (
    "1-255 printable ASCII characters, bare or as a Structured Field string; kept 24 h. "
    "The same key with the same request replays the first answer (`Idempotent-Replayed: true`)."
)
IdempotencyKey = Annotated[
    str | None, _header("Idempotency-Key", _IDEMPOTENCY, {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN})
]
_CALLBACK = (
    "An http(s) URL (at most 2048 characters) that receives the execution's public view when it ends: "
    "a POST signed per Standard Webhooks (`webhook-id`, the same on every attempt, `webhook-timestamp`, "
    "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the caller's signing secret), "
    "retried with backoff until a 2xx. Checked by the SSRF guard and `HttpRequestAllowedHosts` like `http.request`; "
    "the caller needs a signing secret (`POST /v1/admin/signing-secrets`). The body stays the command's params."
)
CallbackUrl = Annotated[
    str | None, _header("Callback-Url", _CALLBACK, {"type": "string", "format": "uri", "maxLength": 2048})
]
_PREFER = "`respond-async` queues the run (202) instead of waiting for it (RFC 7240)."
Prefer = Annotated[str | None, _header("Prefer", _PREFER, {"type": "string"})]
_IF_MATCH = '`*` or the strong ETag `"<version>"` of the version the write expects.'
IfMatch = Annotated[
    str | None, _header("If-Match", _IF_MATCH, {"type": "string", "pattern": r'^(?:\*|"[0-9]{1,18}")$'})
]
_CREATE = "`*`: create the key only if it does not exist."
IfNoneMatchWrite = Annotated[str | None, _header("If-None-Match", _CREATE, {"type": "string", "enum": ["*"]})]
_HELD = "ETags the caller holds: 304 if the current version is one of them."
IfNoneMatchRead = Annotated[str | None, _header("If-None-Match", _HELD, {"type": "string"})]

OPEN_PATHS = frozenset({"/v1/health", "/v1/openapi.json", "/v1/webhooks/{source}"})
_JSON_VALUE: dict[str, Any] = {}  # any JSON value
# Bodies the layer reads itself (cmdgate.http: the size limit before parsing, I-JSON, nesting), keyed by
# operationId. Declaring them with Powertools' Body() would make Powertools parse them first.
REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "runCommand": {
        "required": False,
        "description": "The command's params: a JSON object matching its `params_schema` (absent: `{}`).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "putState": {
        "required": True,
        "description": "The new value: any JSON value.",
        "content": {"application/json": {"schema": _JSON_VALUE}},
    },
    "patchState": {
        "required": True,
        "description": "An RFC 7396 merge patch.",
        "content": {MERGE_PATCH: {"schema": _JSON_VALUE}},
    },
    "receiveWebhook": {
        "required": True,
        "description": "The sender's payload, exactly as signed (a JSON object).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "restoreState": {
        "required": True,
        "description": "The retained version to write again as a new version.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RestoreRequest"}}},
    },
}


def configure_openapi(app: Any) -> None:
    """The description's title, text and bearer scheme, set on the resolver when the document is first
    built: Powertools' OpenAPI models cost a cold start more than all our routes, so they are imported here."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app.configure_openapi(
        title=API_TITLE,
        version=API_VERSION,
        description=API_DESCRIPTION,
        security_schemes={"bearer": HTTPBearer(description="An API key issued by POST /v1/admin/keys, or a JWT")},
        security=[{"bearer": []}],
    )


def finalize_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """What Powertools cannot say, added after generation.

    - `security: []` on the open routes: Powertools drops an empty security list (falsy), and the
      document-wide bearer requirement would then apply to them.
    - The 422 `HTTPValidationError` Powertools adds to every operation when validation is on: we never
      answer it (validation failures are problem+json, declared per route), so it goes, with its schemas.
    - No content on 204 and 304: Powertools gives every response without `content` the handler's return type.
    - The request bodies the layer reads raw (REQUEST_BODIES), and the schema of the restore body.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            declared_422 = operation.get("responses", {}).get("422", {}).get("content", {})
            if "application/json" in declared_422:  # the generator's default, not an answer we give
                del operation["responses"]["422"]
            for status in ("204", "304"):
                operation.get("responses", {}).get(status, {}).pop("content", None)
            if path in OPEN_PATHS:
                operation["security"] = []
            if operation.get("operationId") in REQUEST_BODIES:
                operation["requestBody"] = REQUEST_BODIES[operation["operationId"]]
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    schemas["RestoreRequest"] = RestoreRequest.model_json_schema()
    return document
