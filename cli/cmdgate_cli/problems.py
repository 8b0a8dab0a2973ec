"""What went wrong, as the CLI reports it: exit codes for scripts and problem+json documents for people."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import httpx

# Fields of a problem the CLI shows itself; the rest are shown as "more".
_SHOWN = frozenset({"type", "title", "status", "detail", "code", "request_id", "errors"})


class ExitCode(IntEnum):
    """What the process's exit status tells a script."""

    OK = 0
    FAILED_RUN = 1  # an execution ended failed, dead_lettered or cancelled
    USAGE = 2  # the command line (or the local configuration) is wrong
    REFUSED = 3  # the API refused the request (4xx other than 429)
    UNAVAILABLE = 4  # the API could not answer (5xx, 429, no connection, timeout)


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code of an HTTP error status."""
    if status == 429 or status >= 500:
        return ExitCode.UNAVAILABLE
    return ExitCode.REFUSED


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem, from the API or made up by the CLI for what happened before an answer."""

    title: str
    detail: str = ""
    code: str = ""
    status: int | None = None
    request_id: str | None = None
    retry_after: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The problem as a JSON object (what `--output json` prints)."""
        body: dict[str, Any] = {"title": self.title, "status": self.status, "detail": self.detail, "code": self.code}
        if self.request_id:
            body["request_id"] = self.request_id
        if self.retry_after:
            body["retry_after"] = self.retry_after
        if self.errors:
            body["errors"] = self.errors
        return {**body, **self.extra}


class CliError(Exception):
    """Ends the command with `exit_code`, showing `problem`."""

    def __init__(self, exit_code: ExitCode, problem: Problem) -> None:
        super().__init__(problem.title)
        self.exit_code = exit_code
        self.problem = problem


def usage_error(title: str, detail: str = "") -> CliError:
    """A mistake on the command line or in the local configuration (exit 2)."""
    return CliError(ExitCode.USAGE, Problem(title=title, detail=detail, code="USAGE"))


def problem_from_response(response: httpx.Response) -> Problem:
    """The problem an error answer carries, or one describing an answer that is not problem+json."""
    retry_after = response.headers.get("Retry-After")
    request_id = response.headers.get("X-Request-Id")
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("title"), str):
        errors = body.get("errors")
        return Problem(
            title=body["title"],
            detail=str(body.get("detail") or ""),
            code=str(body.get("code") or ""),
            status=response.status_code,
            request_id=str(body.get("request_id") or request_id or "") or None,
            retry_after=retry_after,
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            extra={k: v for k, v in body.items() if k not in _SHOWN},
        )
    text = response.text.strip()
    return Problem(
        title=response.reason_phrase or f"HTTP {response.status_code}",
        detail=text[:300],
        code=f"HTTP_{response.status_code}",
        status=response.status_code,
        request_id=request_id,
        retry_after=retry_after,
    )
