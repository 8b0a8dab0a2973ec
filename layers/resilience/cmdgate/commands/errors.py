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
