"""Errors a command raises to say how it failed."""

from __future__ import annotations


class CommandError(Exception):
    """A permanent failure: recorded, answered with `status`, never retried."""

    def __init__(self, detail: str, *, status: int = 500, code: str = "COMMAND_FAILED") -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status if 400 <= status <= 599 else 500
        self.code = code


class TransientCommandError(CommandError):
    """A failure worth retrying (async runs are redelivered by SQS)."""

    def __init__(self, detail: str, *, code: str = "COMMAND_TRANSIENT_FAILURE") -> None:
        super().__init__(detail, status=503, code=code)


class DependencyRefused(TransientCommandError):
    """A downstream's circuit is open and the command did nothing yet.

    Answered 503 DEPENDENCY_UNAVAILABLE with Retry-After, and - being a refusal before any
    effect - not stored under an Idempotency-Key, so a retry may run.
    """

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, code="DEPENDENCY_UNAVAILABLE")
        self.retry_after_s = max(1, int(retry_after_s))


class CommandCancelled(CommandError):
    """The command saw `context.cancel_requested()` and stopped: the execution ends `cancelled`."""

    def __init__(self, detail: str = "The execution was cancelled.") -> None:
        super().__init__(detail, status=409, code="EXECUTION_CANCELLED")
