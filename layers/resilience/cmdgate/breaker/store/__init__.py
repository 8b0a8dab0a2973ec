"""Where breaker state lives: the seam and its adapters."""

from cmdgate.breaker.store.base import BreakerRecord, BreakerStore
from cmdgate.breaker.store.dynamodb import DynamoDBBreakerStore
from cmdgate.breaker.store.memory import InMemoryBreakerStore

__all__ = ["BreakerRecord", "BreakerStore", "DynamoDBBreakerStore", "InMemoryBreakerStore"]
