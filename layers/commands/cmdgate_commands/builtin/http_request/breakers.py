"""A circuit breaker per destination host and port, over the store the composition root lends."""

from __future__ import annotations

import threading
from collections import OrderedDict

import httpx

from cmdgate.breaker import BreakerConfig, BreakerStore, CircuitBreaker
from cmdgate.ssrf import CheckedUrl

MAX_CACHED_BREAKERS = 256
FAILURE_STATUSES = frozenset({500, 502, 503, 504})


def _transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError)


def breaker_config() -> BreakerConfig:
    """Breaker settings for one destination host."""
    return BreakerConfig(
        failure_rate_threshold=0.5,
        min_calls=10,
        window_s=60,
        bucket_s=10,
        open_s=30,
        refresh_s=5,
        is_failure=_transport_failure,
    )


_breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()
_breakers_lock = threading.Lock()


def breaker_for(checked: CheckedUrl, store: BreakerStore) -> CircuitBreaker:
    """The breaker of the URL's host and port in `store` (kept for reuse; least recently used dropped first)."""
    name = f"http:{checked.host}:{checked.port}"
    with _breakers_lock:
        breaker = _breakers.get(name)
        if breaker is None or breaker.store is not store:
            breaker = CircuitBreaker(name, store, breaker_config())
            _breakers[name] = breaker
        _breakers.move_to_end(name)
        while len(_breakers) > MAX_CACHED_BREAKERS:
            _breakers.popitem(last=False)
        return breaker
