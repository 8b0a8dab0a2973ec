"""Knobs of a circuit breaker, with defaults that suit one HTTP downstream."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


def every_exception(exc: BaseException) -> bool:
    """The default failure test: any exception raised by the guarded call is a failure."""
    return True


@dataclass(frozen=True)
class BreakerConfig:
    """When a breaker trips, how long it stays open, and how often an instance re-reads shared state."""

    failure_rate_threshold: float = 0.5  # trips when failures / calls >= this ...
    min_calls: int = 10  # ... over at least this many calls in the window
    window_s: float = 60.0  # rolling window, counted in buckets of `bucket_s`
    bucket_s: float = 10.0
    open_s: float = 30.0  # time open before half-open probes are allowed
    half_open_max_probes: int = 1  # concurrent probes allowed in one half-open round
    probe_timeout_s: float = 30.0  # a half-open round with no verdict after this starts a new round
    refresh_s: float = 5.0  # an instance re-reads (and flushes to) the shared record at most this often
    is_failure: Callable[[BaseException], bool] = field(default=every_exception)

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate_threshold <= 1:
            raise ValueError("failure_rate_threshold must be in (0, 1]")
        if self.min_calls < 1 or self.half_open_max_probes < 1:
            raise ValueError("min_calls and half_open_max_probes must be at least 1")
        if self.bucket_s <= 0 or self.window_s < self.bucket_s:
            raise ValueError("need 0 < bucket_s <= window_s")
        if self.open_s <= 0 or self.probe_timeout_s <= 0 or self.refresh_s < 0:
            raise ValueError("open_s and probe_timeout_s must be positive, refresh_s not negative")

    @property
    def buckets(self) -> int:
        """How many buckets make up the window."""
        return math.ceil(self.window_s / self.bucket_s)
