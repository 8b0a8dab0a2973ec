"""Request checks GitHub applies to gist bodies and headers, with GitHub's 400/422 answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from werkzeug.wrappers import Request

from cmdgate_local.gist_server.responses import (
    DOC_CONDITIONAL,
    DOC_CREATE,
    DOC_UPDATE,
    DOCS,
    Reject,
    error,
    json_response,
)

_CONDITIONAL_HEADERS = (
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
)
_UNSAFE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class BadRequest(Exception):
    """A request body GitHub would refuse; carries the answer's status and body."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        super().__init__(str(body.get("message")))
        self.status = status
        self.body = body


def _invalid(doc: str, detail: str) -> BadRequest:
    return BadRequest(
        422,
        {
            "message": f"Invalid request.\n\n{detail}",
            "documentation_url": doc,
            "status": "422",
        },
    )


def _not_a(doc: str, prop: str, value: object, kind: str) -> BadRequest:
    """GitHub's 422 for a property of the wrong JSON type."""
    return _invalid(doc, f"For 'properties/{prop}', {json.dumps(value)} is not {kind}.")


def _validation_failed(doc: str, code: str, field_name: str = "files") -> BadRequest:
    return BadRequest(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Gist", "code": code, "field": field_name}],
            "documentation_url": doc,
            "status": "422",
        },
    )


def refuse_conditional_on_unsafe(request: Request) -> None:
    """GitHub answers 400 to conditional headers on unsafe requests."""
    if request.method not in _UNSAFE_METHODS:
        return
    if any(h in request.headers for h in _CONDITIONAL_HEADERS):
        raise Reject(
            error(
                400,
                "Conditional request headers are not allowed in unsafe requests unless supported by the endpoint",
                DOC_CONDITIONAL,
            ),
            "conditional_on_unsafe",
        )


def json_body(request: Request) -> object:
    """The parsed body (None when empty); 400 'Problems parsing JSON' otherwise."""
    data = request.get_data(cache=True)
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise Reject(
            json_response(
                400,
                {
                    "message": "Problems parsing JSON",
                    "documentation_url": DOCS,
                    "status": "400",
                },
            ),
            "validation",
        ) from None


def int_arg(request: Request, name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def since_arg(request: Request) -> float | None:
    """The `since` query parameter (ISO 8601, e.g. 2026-01-01T00:00:00Z) as epoch seconds.

    None when absent; an unreadable value is ignored, as `int_arg` ignores a bad number.
    A time without a zone is taken as UTC.
    """
    value = request.args.get("since")
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_description(body: Mapping[str, object], doc: str) -> str | None:
    value = body.get("description")
    if value is not None and not isinstance(value, str):
        raise _not_a(doc, "description", value, "a string")
    return value


def parse_create(body: object) -> tuple[dict[str, str], str | None, bool]:
    """Files, description and public flag of a POST /gists body."""
    if not isinstance(body, dict):
        raise _invalid(DOC_CREATE, "Invalid input: the body is not an object.")
    if "files" not in body:
        raise _invalid(DOC_CREATE, '"files" wasn\'t supplied.')
    files = _parse_create_files(body["files"])
    description = parse_description(body, DOC_CREATE)
    public = _parse_public(body.get("public", False))
    return files, description, public


def parse_update(body: object, files: Mapping[str, str], description: str | None) -> tuple[dict[str, str], str | None]:
    """Files and description after applying a PATCH body to the current ones."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _invalid(DOC_UPDATE, "Invalid input: the body is not an object.")
    new_description = parse_description(body, DOC_UPDATE) if "description" in body else description
    return _apply_file_changes(files, body.get("files", {})), new_description


def _parse_public(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _not_a(DOC_CREATE, "public", value, "a boolean")


def _check_filename(name: str, doc: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise _validation_failed(doc, "invalid")


def _parse_create_files(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _not_a(DOC_CREATE, "files", value, "an object")
    if not value:
        raise _validation_failed(DOC_CREATE, "missing_field")
    files: dict[str, str] = {}
    for name, spec in value.items():
        if not isinstance(spec, dict) or "content" not in spec:
            raise _invalid(
                DOC_CREATE,
                f"For 'properties/files/{name}', \"content\" wasn't supplied.",
            )
        content = spec["content"]
        if not isinstance(content, str):
            raise _not_a(DOC_CREATE, "content", content, "a string")
        _check_filename(name, DOC_CREATE)
        if not content:
            raise _validation_failed(DOC_CREATE, "missing_field")
        files[name] = content
    return files


def _apply_file_changes(current: Mapping[str, str], value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _not_a(DOC_UPDATE, "files", value, "an object")
    files = dict(current)
    for name, spec in value.items():
        if spec is None or (isinstance(spec, dict) and "content" not in spec and spec.get("filename") is None):
            # GitHub deletes a file given as null or without content and filename.
            files.pop(name, None)
            continue
        if not isinstance(spec, dict):
            raise _not_a(DOC_UPDATE, f"files/{name}", spec, "an object")
        content = spec.get("content", files.get(name))
        new_name = spec.get("filename") or name
        if not isinstance(content, str):
            if name not in files:
                raise _validation_failed(DOC_UPDATE, "missing_field")
            raise _not_a(DOC_UPDATE, "content", content, "a string")
        if not isinstance(new_name, str):
            raise _not_a(DOC_UPDATE, "filename", new_name, "a string")
        _check_filename(new_name, DOC_UPDATE)
        if not content:
            raise _validation_failed(DOC_UPDATE, "missing_field")
        if new_name != name and new_name in files:
            raise _validation_failed(DOC_UPDATE, "already_exists")
        files.pop(name, None)
        files[new_name] = content
    if not files:
        raise _validation_failed(DOC_UPDATE, "missing_field")
    return files
