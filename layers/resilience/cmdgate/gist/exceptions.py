"""Errors of the Gist client: one base class, raised with context, mapped to problem+json at the edge.

`str(exc)` names the operation, GitHub's status code and GitHub's short `message`
(for logs); the problem `detail` an API caller may see is fixed text. No error
carries a response body, a header or the token.
"""

from __future__ import annotations

import math

from cmdgate.errors import ProblemError


class GistError(ProblemError):
    """A call to the Gist API failed."""

    status, code, title = 502, "GIST_ERROR", "The state store failed"

    def __init__(
        self,
        operation: str,
        reason: str,
        *,
        status_code: int | None = None,
        github_message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.operation = operation  # e.g. "get_gist"
        self.reason = reason  # our words: what went wrong
        self.status_code = status_code  # GitHub's HTTP status, None when no answer came
        self.github_message = github_message  # GitHub's short `message`, first line only
        super().__init__(None, headers=headers)

    def __str__(self) -> str:
        text = f"{self.operation}: {self.reason}"
        if self.status_code is not None:
            text += f" (HTTP {self.status_code}"
            text += f": {self.github_message})" if self.github_message else ")"
        return text


class GistNotFound(GistError):
    """The gist (or the revision) does not exist, or the token cannot see it: 404."""

    status, code, title = 404, "GIST_NOT_FOUND", "The stored state was not found"


class GistRateLimited(GistError):
    """GitHub's rate limit (or our write spacing) would make the call wait longer than allowed."""

    status, code, title = 503, "GIST_RATE_LIMITED", "The state store is rate limited"

    def __init__(
        self,
        operation: str,
        retry_after_s: float,
        reason: str = "rate limited",
        *,
        status_code: int | None = None,
        github_message: str | None = None,
    ) -> None:
        self.retry_after_s = max(0.0, retry_after_s)  # seconds until a call may succeed
        super().__init__(
            operation,
            f"{reason}; retry after {self.retry_after_s:.1f} s",
            status_code=status_code,
            github_message=github_message,
            headers={"Retry-After": str(max(1, math.ceil(self.retry_after_s)))},
        )


class GistUnavailable(GistError):
    """5xx, timeouts or connection errors outlasted the retries (or the deadline, or the retry budget)."""

    status, code, title = 503, "GIST_UNAVAILABLE", "The state store is unavailable"


class GistWriteUnconfirmed(GistUnavailable):
    """A write (blind_retry=False) got no answer that says whether GitHub applied it; it was not retried.

    A 5xx, a read or write timeout, or a connection broken after the request went
    out: GitHub may have created the gist or committed the revision, or not. Read
    the gist back (or list the gists) before deciding to write again.
    """

    def __init__(
        self,
        operation: str,
        what: str,
        *,
        status_code: int | None = None,
        github_message: str | None = None,
    ) -> None:
        super().__init__(
            operation,
            f"{what}; the write may or may not have landed, read it back before retrying",
            status_code=status_code,
            github_message=github_message,
        )


class GistRequestRejected(GistError):
    """GitHub refused the request with a 4xx that retrying cannot fix (401, 403, 400, 422...)."""

    status, code, title = 502, "GIST_REQUEST_REJECTED", "The state store refused the request"
