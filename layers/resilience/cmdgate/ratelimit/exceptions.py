"""Errors of the rate limiter."""

from __future__ import annotations

from cmdgate.errors import ProblemError
from cmdgate.ratelimit.policy import RateLimitDecision, RateLimitVerdict

QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class RateLimited(ProblemError):
    """429 RATE_LIMITED: the caller's quota is exhausted; carries the RateLimit fields and `Retry-After`."""

    status, code, title = 429, "RATE_LIMITED", "Too many requests"
    type_uri = QUOTA_EXCEEDED_TYPE

    def __init__(self, verdict: RateLimitVerdict | RateLimitDecision, detail: str | None = None) -> None:
        if isinstance(verdict, RateLimitDecision):
            verdict = RateLimitVerdict.of([verdict])
        if verdict.allowed or verdict.retry_after_s is None:
            raise ValueError("RateLimited needs a refused verdict")
        self.verdict = verdict
        self.retry_after_s = verdict.retry_after_s
        super().__init__(
            detail or f"The request quota is exhausted; retry after {verdict.retry_after_s} s.",
            headers=verdict.headers(),
            extensions={"violated-policies": [d.policy.name for d in verdict.refused]},
        )
