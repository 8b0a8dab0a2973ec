"""Errors of the circuit breaker."""

from __future__ import annotations

from cmdgate.errors import DependencyUnavailable


class CircuitOpen(DependencyUnavailable):
    """The breaker refuses the call: 503 DEPENDENCY_UNAVAILABLE with `Retry-After`."""

    title = "A dependency is unavailable"

    def __init__(self, name: str, retry_after_s: int) -> None:
        self.breaker = name  # for logs and metrics; not put in the response body
        self.retry_after_s = max(1, retry_after_s)
        super().__init__(
            "A downstream dependency is failing; calls to it are paused.",
            headers={"Retry-After": str(self.retry_after_s)},
        )
