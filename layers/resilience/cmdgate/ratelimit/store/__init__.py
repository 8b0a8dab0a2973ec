"""Where rate-limit state lives: the seam and its adapters."""

from cmdgate.ratelimit.store.base import OutcomeSlot, OutcomeWindow, RateLimitStore, TatWrite, bucket_key, outcomes_key
from cmdgate.ratelimit.store.dynamodb import DynamoDBRateLimitStore
from cmdgate.ratelimit.store.memory import InMemoryRateLimitStore

__all__ = [
    "DynamoDBRateLimitStore",
    "InMemoryRateLimitStore",
    "OutcomeSlot",
    "OutcomeWindow",
    "RateLimitStore",
    "TatWrite",
    "bucket_key",
    "outcomes_key",
]
