"""Rate limiting of API requests: the principal's policy, adaptive tightening, the bucket, the outcome."""

from __future__ import annotations

from cmdgate.auth import Principal
from cmdgate.ratelimit.adaptive import AdaptiveLimiter
from cmdgate.ratelimit.base import TokenBucket
from cmdgate.ratelimit.exceptions import RateLimited
from cmdgate.ratelimit.policy import RateLimitDecision, RateLimitPolicy


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

    def admit(self, principal: Principal, scope: str) -> RateLimitDecision:
        """Take from the (principal, scope) bucket; raise RateLimited (429) when it is empty."""
        policy = self.policy_of(principal)
        if self._adaptive is not None:
            policy = self._adaptive.effective_policy(principal.principal_id, policy)
        decision = self._bucket.take(principal.principal_id, scope, policy)
        if not decision.allowed:
            raise RateLimited(decision)
        return decision

    def record(self, principal: Principal, status_code: int) -> None:
        """Feed the outcome to adaptive tightening (refusals such as 403/422/429 count against it)."""
        if self._adaptive is not None:
            self._adaptive.record(principal.principal_id, status_code)
