"""Per-principal rate limits shared by every Lambda instance: a GCRA token bucket, adaptive tightening.

    store = DynamoDBRateLimitStore(dynamodb_client, control_table)
    bucket, adaptive = TokenBucket(store), AdaptiveLimiter(store)

    policy = adaptive.effective_policy(principal_id, RateLimitPolicy(600, 60))    # usually 0 calls
    verdict = bucket.take_all(principal_id, "api", [("", policy), ("deploy", own)])  # usually 1 UpdateItem
    if not verdict.allowed:
        raise RateLimited(verdict)                                                # 429 + Retry-After
    ...                                                                           # add verdict.headers()
    adaptive.record(principal_id, status_code)                                    # 1 UpdateItem

Call counts per case are in `cmdgate.ratelimit.base` and `cmdgate.ratelimit.adaptive`.
"""

from cmdgate.ratelimit.adaptive import AdaptiveLimiter
from cmdgate.ratelimit.base import TokenBucket
from cmdgate.ratelimit.config import AdaptiveConfig
from cmdgate.ratelimit.exceptions import QUOTA_EXCEEDED_TYPE, RateLimited
from cmdgate.ratelimit.policy import RateLimitDecision, RateLimitPolicy, RateLimitVerdict
from cmdgate.ratelimit.store import DynamoDBRateLimitStore, InMemoryRateLimitStore, OutcomeWindow, RateLimitStore

__all__ = [
    "QUOTA_EXCEEDED_TYPE",
    "AdaptiveConfig",
    "AdaptiveLimiter",
    "DynamoDBRateLimitStore",
    "InMemoryRateLimitStore",
    "OutcomeWindow",
    "RateLimitDecision",
    "RateLimitPolicy",
    "RateLimitStore",
    "RateLimitVerdict",
    "RateLimited",
    "TokenBucket",
]
