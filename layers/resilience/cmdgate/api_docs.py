"""What the OpenAPI description says about each answer: response models and problem responses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.errors import PROBLEM_CONTENT_TYPE

API_TITLE = "cmdgate"
API_VERSION = "1.0.0"
API_DESCRIPTION = """Run a catalogue of commands over HTTP.

Every error is RFC 9457 problem+json with a stable `code`. `POST /v1/commands/{name}` honours
`Idempotency-Key` (a Structured Field string or the bare form, 1-255 printable ASCII characters):
keys are scoped to the caller and kept for 24 hours; a retry with the same key and request gets the
original answer again with `Idempotent-Replayed: true`. Every authenticated answer carries the
caller's limit in the IETF `RateLimit-Policy` and `RateLimit` fields."""

IDEMPOTENCY_RETENTION_S = 86400


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str


class CommandDescription(BaseModel):
    """A command the caller may run."""

    name: str
    description: str
    params_schema: dict[str, Any]
    permission: str
    idempotency: Literal["required", "optional"]
    modes: list[Literal["sync", "async"]]
    timeout_s: float


class CommandList(BaseModel):
    """`GET /v1/commands`."""

    commands: list[CommandDescription]
    next_cursor: str | None = None


class RunResult(BaseModel):
    """A sync run that succeeded."""

    execution_id: str
    command: str
    status: Literal["succeeded"]
    result: Any = None


class Accepted(BaseModel):
    """An async run was queued."""

    execution_id: str
    status: Literal["queued"]


class ExecutionErrorView(BaseModel):
    """Why an execution failed."""

    code: str
    detail: str
    status: int


class ExecutionView(BaseModel):
    """`GET /v1/executions/{id}`."""

    execution_id: str
    command: str
    status: Literal["queued", "running", "succeeded", "failed", "dead_lettered"]
    attempts: int
    result: Any = None
    error: ExecutionErrorView | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


class CheckView(BaseModel):
    """One dependency check."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "failing"]
    latency_ms: float


class HealthView(BaseModel):
    """`GET /v1/health`."""

    status: Literal["healthy", "degraded", "unhealthy"]
    checks: dict[str, CheckView]


class KeyView(BaseModel):
    """An issued API key (never the key or its hash)."""

    key_id: str
    name: str
    permissions: list[str]
    rate_limit: dict[str, int]
    status: str
    created_at: int
    expires_at: int | None = None


class KeyList(BaseModel):
    """`GET /v1/admin/keys`."""

    keys: list[KeyView]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


_PROBLEM_TEXT = {
    400: "Bad request (body not a JSON object, bad header or cursor)",
    401: "Missing or invalid credentials",
    403: "Not permitted",
    404: "Not found",
    409: "A request with this Idempotency-Key is still running",
    412: "Precondition failed (If-Match / If-None-Match)",
    413: "Request body too large",
    415: "Unsupported media type (JSON bodies are application/json; a state PATCH is application/merge-patch+json)",
    422: "Parameters fail validation, or Idempotency-Key reused with another request",
    428: "Precondition required (If-Match or If-None-Match)",
    429: "Over the rate limit",
    500: "The command failed",
    502: "Gateway error",
    503: "A dependency is unavailable",
    504: "The command timed out",
}


def responses(
    ok: dict[int, tuple[str, type[BaseModel] | None]], *problems: int, authenticated: bool = True
) -> dict[int, Any]:
    """The `responses` of a route: its successes and the problem+json answers it may give."""
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
    return documented


OPEN_PATHS = frozenset({"/v1/health", "/v1/openapi.json"})
_LIST_PARAMETERS = [
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 2048}},
]
_RUN_PARAMETERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "1-255 printable ASCII characters, bare or as a Structured Field string; kept 24 h.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 257},
    },
    {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "`respond-async` queues the run (202) instead of waiting for it.",
        "schema": {"type": "string", "enum": ["respond-async"]},
    },
]


def finalize_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Add what the generator cannot see: open routes, the raw JSON body and headers of a run, list paging."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            declared_422 = operation.get("responses", {}).get("422", {}).get("content", {})
            if "application/json" in declared_422:  # the generator's default, not an answer we give
                del operation["responses"]["422"]
            if path in OPEN_PATHS:
                operation["security"] = []
            if path == "/v1/commands/{name}" and method == "post":
                operation["parameters"] = operation.get("parameters", []) + _RUN_PARAMETERS
                operation["requestBody"] = {
                    "required": False,
                    "description": "The command's params: a JSON object matching its `params_schema`.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
                operation["x-idempotency-retention-seconds"] = IDEMPOTENCY_RETENTION_S
            if method == "get" and path in ("/v1/commands", "/v1/admin/keys"):
                operation["parameters"] = operation.get("parameters", []) + _LIST_PARAMETERS
    return document
