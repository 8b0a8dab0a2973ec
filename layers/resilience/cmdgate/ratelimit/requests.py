"""Rate limiting of API requests: the principal's policy, adaptive tightening, the bucket, the outcome."""

from __future__ import annotations

from cmdgate.auth import Principal
from cmdgate.ratelimit.adaptive import AdaptiveLimiter
from cmdgate.ratelimit.base import TokenBucket
from cmdgate.ratelimit.exceptions import RateLimited
from cmdgate.ratelimit.policy import RateLimitPolicy, RateLimitVerdict

# Every request of a principal takes from this one bucket item, whatever it calls.
PRINCIPAL_SCOPE = "api"


class RequestRateLimiter:
    """Admits or refuses one request of a principal, and learns from how it ended."""

    def __init__(self, bucket: TokenBucket, adaptive: AdaptiveLimiter | None, default: RateLimitPolicy) -> None:
        self._bucket = bucket
        self._adaptive = adaptive
        self._default = default

    def policy_of(self, principal: Principal) -> RateLimitPolicy:
        """The principal's own policy (from its key), else the deployment default."""
        quota, window = principal.rate_limit.get("quota"), principal.rate_limit.get("window_s")
        if isinstance(quota, int) and isinstance(window, int) and quota >= 1 and window >= 1:
            return RateLimitPolicy(quota, window)
        return self._default

    def admit(self, principal: Principal, command: tuple[str, RateLimitPolicy] | None = None) -> RateLimitVerdict:
        """Take from the principal's bucket, and from `command`'s own (name, policy) too; 429 if either is empty.

        Both buckets live in the principal's item, so this is one conditional write either way.
        """
        policy = self.policy_of(principal)
        if self._adaptive is not None:
            policy = self._adaptive.effective_policy(principal.principal_id, policy)
        limits = [("", policy)] + ([command] if command is not None else [])
        verdict = self._bucket.take_all(principal.principal_id, PRINCIPAL_SCOPE, limits)
        if not verdict.allowed:
            raise RateLimited(verdict)
        return verdict

    def take_counts(self) -> tuple[int, int]:
        """(takes, takes that needed a second write) of this environment so far."""
        return self._bucket.takes, self._bucket.retried_takes

    def record(self, principal: Principal, status_code: int) -> None:
        """Feed the outcome to adaptive tightening (refusals such as 403/422/429 count against it)."""
        if self._adaptive is not None:
            self._adaptive.record(principal.principal_id, status_code)
