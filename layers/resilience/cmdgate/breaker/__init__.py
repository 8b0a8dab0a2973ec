"""Circuit breakers whose state is shared by every Lambda instance, with an in-memory fast path."""

from cmdgate.breaker.base import Attempt, BreakerState, BreakerStatus, CircuitBreaker, open_breakers
from cmdgate.breaker.config import BreakerConfig
from cmdgate.breaker.exceptions import CircuitOpen
from cmdgate.breaker.store import BreakerRecord, BreakerStore, DynamoDBBreakerStore, InMemoryBreakerStore

__all__ = [
    "Attempt",
    "BreakerConfig",
    "BreakerRecord",
    "BreakerState",
    "BreakerStatus",
    "BreakerStore",
    "CircuitBreaker",
    "CircuitOpen",
    "DynamoDBBreakerStore",
    "InMemoryBreakerStore",
    "open_breakers",
]
