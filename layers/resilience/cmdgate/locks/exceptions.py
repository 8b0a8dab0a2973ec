"""Errors of the lease locks: one base class, raised with context, mapped to problem+json at the edge."""

from __future__ import annotations

import math

from cmdgate.errors import ProblemError


class LockError(ProblemError):
    """A lock could not be used (also: too little invocation time left to hold a lease)."""

    status, code, title = 503, "LOCK_UNAVAILABLE", "Lock unavailable"

    def __init__(self, name: str, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.lock = name  # for logs; never put in the response body
        super().__init__(detail, headers=headers)


class LockHeld(LockError):
    """Another owner holds an unexpired lease: 409 with `Retry-After`."""

    status, code, title = 409, "LOCK_HELD", "The resource is locked by another request"

    def __init__(self, name: str, holder: str | None, retry_after_s: float) -> None:
        self.holder = holder  # the owner holding the lease, as stored (None if unknown)
        self.retry_after_s = max(0.0, retry_after_s)  # until the current lease ends, by our clock
        super().__init__(
            name,
            "Another request holds the lock on this resource; try again later.",
            headers={"Retry-After": str(max(1, math.ceil(self.retry_after_s)))},
        )


class LockLost(LockError):
    """The lease is no longer ours (expired, taken over or released): 409."""

    status, code, title = 409, "LOCK_LOST", "The lock on the resource was lost"

    def __init__(self, name: str, owner: str, fence: int) -> None:
        self.owner = owner
        self.fence = fence
        super().__init__(name, "The lock on this resource expired or was taken over; try again.")
