"""Problems of the state API (RFC 9457 via cmdgate.errors)."""

from __future__ import annotations

from cmdgate import errors


class InvalidStateKey(errors.ProblemError):
    status, code, title = 400, "INVALID_STATE_KEY", "Invalid state key"


class StateNotFound(errors.NotFound):
    code, title = "STATE_NOT_FOUND", "Unknown state key"


class VersionNotRetained(errors.NotFound):
    code, title = "VERSION_NOT_RETAINED", "Version not retained"


class PreconditionFailed(errors.ProblemError):
    status, code, title = 412, "PRECONDITION_FAILED", "Precondition failed"


class PreconditionRequired(errors.ProblemError):
    status, code, title = 428, "PRECONDITION_REQUIRED", "Precondition required"


class StateTooLarge(errors.ProblemError):
    status, code, title = 422, "STATE_TOO_LARGE", "State value too large"


class StateContention(errors.ProblemError):
    """Concurrent writers (or another holder's lease on the key) kept this write out for the request's time."""

    status, code, title = 409, "STATE_CONTENTION", "State key is contended"


class StateThrottled(errors.DependencyUnavailable):
    code, title = "STATE_THROTTLED", "State writes are throttled"
