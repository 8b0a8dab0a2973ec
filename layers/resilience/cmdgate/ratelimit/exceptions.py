"""Errors of the rate limiter."""

from __future__ import annotations

from cmdgate.errors import ProblemError
from cmdgate.ratelimit.policy import RateLimitDecision

QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class RateLimited(ProblemError):
    """429 RATE_LIMITED: the caller's quota is exhausted; carries the RateLimit fields and `Retry-After`."""

    status, code, title = 429, "RATE_LIMITED", "Too many requests"
    type_uri = QUOTA_EXCEEDED_TYPE

    def __init__(self, decision: RateLimitDecision, detail: str | None = None) -> None:
        if decision.allowed or decision.retry_after_s is None:
            raise ValueError("RateLimited needs a refused decision")
        self.decision = decision
        self.retry_after_s = decision.retry_after_s
        super().__init__(
            detail or f"The request quota is exhausted; retry after {decision.retry_after_s} s.",
            headers=decision.headers(),
            extensions={"violated-policies": [decision.policy.name]},
        )
