"""A circuit breaker per GitHub API host, over the store the composition root lends (the control table)."""

from __future__ import annotations

import threading

import httpx

from cmdgate.breaker import BreakerConfig, BreakerStore, CircuitBreaker

FAILURE_STATUSES = frozenset({500, 502, 503, 504})


def _transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError)


# Few calls trip it: dispatches are rare, and a failing GitHub should stop being asked soon.
BREAKER_CONFIG = BreakerConfig(
    failure_rate_threshold=0.5,
    min_calls=4,
    window_s=60,
    bucket_s=10,
    open_s=30,
    refresh_s=1,
    is_failure=_transport_failure,
)

_breakers: dict[str, CircuitBreaker] = {}
_lock = threading.Lock()


def breaker_for(host: str, store: BreakerStore) -> CircuitBreaker:
    """The breaker of GitHub API host `host` in `store`, kept for reuse across invocations."""
    name = f"github:{host}"
    with _lock:
        breaker = _breakers.get(name)
        if breaker is None or breaker.store is not store:
            breaker = _breakers[name] = CircuitBreaker(name, store, BREAKER_CONFIG)
        return breaker
