"""One error hierarchy, mapped once to RFC 9457 problem+json.

Every failure the API reports is a `ProblemError`; its fields are chosen by
our code, never copied from an exception message, so no stack trace, AWS
error text or secret can reach a response body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Each code's entry in docs/errors.md (published at this address): `#` + the code in lower case, `-` for `_`.
ERRORS_URI = "https://cmdgate.dev/errors"


def problem_type(code: str) -> str:
    """The `type` URI of a problem code: its entry in the list of error codes."""
    return f"{ERRORS_URI}#{code.lower().replace('_', '-')}"


class ProblemError(Exception):
    """An error with an HTTP status and a stable machine code."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    title: str = "Internal error"
    type_uri: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extensions = extensions or {}

    def to_problem(self, request_id: str | None = None) -> dict[str, Any]:
        """The problem+json document for this error."""
        body: dict[str, Any] = {
            "type": self.type_uri or problem_type(self.code),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if request_id:
            body["request_id"] = request_id
        body.update(self.extensions)
        return body


class BadRequest(ProblemError):
    status, code, title = 400, "BAD_REQUEST", "Bad request"


class InvalidJson(ProblemError):
    status, code, title = 400, "INVALID_JSON", "Request body is not a JSON object"


class Unauthorized(ProblemError):
    status, code, title = 401, "UNAUTHORIZED", "Unauthorized"


class Forbidden(ProblemError):
    status, code, title = 403, "FORBIDDEN", "Forbidden"


class NotFound(ProblemError):
    status, code, title = 404, "NOT_FOUND", "Not found"


class CommandNotFound(NotFound):
    code, title = "COMMAND_NOT_FOUND", "Unknown command"


class ExecutionNotFound(NotFound):
    code, title = "EXECUTION_NOT_FOUND", "Unknown execution"


class ExecutionFinished(ProblemError):
    status, code, title = 409, "EXECUTION_FINISHED", "The execution already ended"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "PAYLOAD_TOO_LARGE", "Request body too large"


class UnsupportedMediaType(ProblemError):
    status, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class ValidationFailed(ProblemError):
    status, code, title = 422, "VALIDATION_FAILED", "Request parameters are invalid"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail or "The parameters do not match the schema.", extensions={"errors": errors})


class DependencyUnavailable(ProblemError):
    status, code, title = 503, "DEPENDENCY_UNAVAILABLE", "A dependency is unavailable"


class CommandTimeout(ProblemError):
    status, code, title = 504, "COMMAND_TIMEOUT", "Command timed out"


class CommandFailed(ProblemError):
    status, code, title = 500, "COMMAND_FAILED", "Command failed"


class ResultTooLarge(ProblemError):
    status, code, title = 500, "RESULT_TOO_LARGE", "Command result too large"


class InternalError(ProblemError):
    """Anything unexpected: the detail is fixed so nothing internal leaks."""

    def __init__(self) -> None:
        super().__init__("An unexpected error occurred; it has been logged.")


def validation_errors_from_pydantic(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Reduce pydantic's error list to `[{loc, msg}]` with no input echoed back."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "invalid"))} for e in errors]
