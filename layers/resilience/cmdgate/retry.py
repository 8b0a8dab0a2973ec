"""Retries for HTTP downstreams: exponential backoff with full jitter, a deadline and a retry budget.

Retry at ONE layer only, so attempts never multiply (3 layers x 3 attempts = 27 calls):

- AWS calls: botocore's `standard` retry mode (see `cmdgate.aws`), nothing here, with one
  exception: the release of an idempotency key's in-progress marker (cmdgate.idempotency), since
  botocore's retry quota stops retrying under sustained throttling and a marker left behind
  holds its client for a whole invocation;
- HTTP downstreams (GitHub, `http.request`, ...): this module;
- whole messages (async executions, events): SQS redelivery up to maxReceiveCount.

A retry happens only when all of these hold:

1. `is_retryable(exc_or_result)` says so (it sees the exception raised, or the
   value returned, by the attempt);
2. fewer than `max_attempts` attempts were made;
3. the backoff sleep plus one attempt (`min_attempt_s`) fit in `remaining_s()`
   minus `safety_margin_s`: a sleep that would leave no time to finish is never started;
4. the process's `RetryBudget` has a token: retries are at most `ratio` of
   calls plus a small floor, so during an outage retries cannot multiply the load.

When a retry is refused the last outcome stands: the exception is re-raised,
or the last (retryable) result is returned to the caller.

Backoff is "full jitter": sleep = random(0, min(cap_s, base_s * 2**n)) before retry n (0-based).
"""

from __future__ import annotations

import math
import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T")

GiveUpReason = Literal["not_retryable", "max_attempts", "deadline", "budget"]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how far apart, and how much time must be left to try again."""

    max_attempts: int = 3
    base_s: float = 0.1
    cap_s: float = 2.0
    min_attempt_s: float = 1.0  # time one attempt needs; reserved before a retry is started
    safety_margin_s: float = 0.5  # kept free before the deadline (to record and answer)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.cap_s < 0 or self.min_attempt_s < 0 or self.safety_margin_s < 0:
            raise ValueError("durations must not be negative")


def full_jitter(retry_index: int, base_s: float, cap_s: float, rand: Callable[[], float]) -> float:
    """Seconds to sleep before retry `retry_index` (0-based): uniform in [0, min(cap, base * 2**n))."""
    ceiling = min(cap_s, math.ldexp(base_s, min(retry_index, 62)))  # base_s * 2**n as a float
    return rand() * ceiling


class RetryBudget:
    """A per-process token bucket: each call deposits `ratio` tokens, each retry spends one.

    The bucket also refills at `min_per_s` tokens a second (the floor that lets a
    quiet process still retry) and holds at most `max_tokens`.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        min_per_s: float = 0.2,
        max_tokens: float = 10.0,
        initial_tokens: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ratio < 0 or min_per_s < 0 or max_tokens < 1:
            raise ValueError("ratio and min_per_s must be >= 0 and max_tokens >= 1")
        self._ratio = ratio
        self._min_per_s = min_per_s
        self._max = max_tokens
        self._clock = clock
        self._tokens = max_tokens if initial_tokens is None else min(max_tokens, initial_tokens)
        self._refilled_at = clock()
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        with self._lock:
            self._refill()
            return self._tokens

    def record_call(self) -> None:
        """Deposit for one original call (not for its retries)."""
        with self._lock:
            self._refill()
            self._tokens = min(self._max, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry; False when the budget is exhausted."""
        with self._lock:
            self._refill()
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._refilled_at = now
        self._tokens = min(self._max, self._tokens + elapsed * self._min_per_s)


def _no_deadline() -> float:
    return float("inf")


class Retrier:
    """Runs a zero-argument callable, retrying under a `RetryPolicy`, a deadline and a budget."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        is_retryable: Callable[[object], bool],
        remaining_s: Callable[[], float] = _no_deadline,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        on_retry: Callable[[int, float, object], None] | None = None,
        on_give_up: Callable[[GiveUpReason, object], None] | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._is_retryable = is_retryable
        self._remaining_s = remaining_s
        self._budget = budget
        self._sleep = sleep
        self._random = random
        self._on_retry = on_retry
        self._on_give_up = on_give_up

    def call(self, fn: Callable[[], T]) -> T:
        """The first non-retryable outcome of `fn`, or the last one when retrying must stop."""
        if self._budget is not None:
            self._budget.record_call()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fn()
            except Exception as exc:
                delay = self._next_delay(attempt, exc)
                if delay is None:
                    raise
                self._before_retry(attempt, delay, exc)
                continue
            delay = self._next_delay(attempt, result)
            if delay is None:
                return result
            self._before_retry(attempt, delay, result)

    def _next_delay(self, attempts_made: int, outcome: object) -> float | None:
        """The sleep before the next attempt, or None if there must be no next attempt."""
        if not self._is_retryable(outcome):
            if isinstance(outcome, BaseException):
                self._give_up("not_retryable", outcome)
            return None
        policy = self.policy
        if attempts_made >= policy.max_attempts:
            self._give_up("max_attempts", outcome)
            return None
        delay = full_jitter(attempts_made - 1, policy.base_s, policy.cap_s, self._random)
        if delay + policy.min_attempt_s > self._remaining_s() - policy.safety_margin_s:
            self._give_up("deadline", outcome)
            return None
        if self._budget is not None and not self._budget.try_spend():
            self._give_up("budget", outcome)
            return None
        return delay

    def _give_up(self, reason: GiveUpReason, outcome: object) -> None:
        if self._on_give_up is not None:
            self._on_give_up(reason, outcome)

    def _before_retry(self, attempts_made: int, delay: float, outcome: object) -> None:
        if self._on_retry is not None:
            self._on_retry(attempts_made, delay, outcome)
        if delay > 0:
            self._sleep(delay)
