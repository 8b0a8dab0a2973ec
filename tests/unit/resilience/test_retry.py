"""Retries: attempt counts, full-jitter bounds, the deadline, the budget, and what is never retried."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cmdgate.retry import Retrier, RetryBudget, RetryPolicy, full_jitter


class Clock:
    """A monotonic clock that moves only when told (sleeps and attempts advance it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails `failures` times with `error`, then returns "ok"; counts its calls."""

    def __init__(self, failures: int, error: Exception | None = None, clock: Clock | None = None, cost_s: float = 0.0):
        self.failures = failures
        self.error = error or ConnectionError("down")
        self.calls = 0
        self.clock = clock
        self.cost_s = cost_s

    def __call__(self) -> str:
        self.calls += 1
        if self.clock is not None:
            self.clock.now += self.cost_s
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def connection_errors(outcome: object) -> bool:
    return isinstance(outcome, ConnectionError)


def make(policy: RetryPolicy | None = None, **kwargs: Any) -> tuple[Retrier, list[float], list[str]]:
    sleeps: list[float] = []
    reasons: list[str] = []
    kwargs.setdefault("is_retryable", connection_errors)
    retrier = Retrier(
        policy or RetryPolicy(max_attempts=3, base_s=0.1, cap_s=2.0, min_attempt_s=0.0, safety_margin_s=0.0),
        sleep=sleeps.append,
        on_give_up=lambda reason, outcome: reasons.append(reason),
        **kwargs,
    )
    return retrier, sleeps, reasons


def test_retries_until_success_within_max_attempts():
    retrier, sleeps, _ = make()
    fn = Flaky(failures=2)
    assert retrier.call(fn) == "ok"
    assert fn.calls == 3
    assert len(sleeps) == 2


def test_stops_after_max_attempts_and_reraises_the_last_error():
    retrier, sleeps, reasons = make()
    fn = Flaky(failures=10)
    with pytest.raises(ConnectionError):
        retrier.call(fn)
    assert fn.calls == 3
    assert len(sleeps) == 2
    assert reasons == ["max_attempts"]


def test_retryable_results_are_retried_and_the_last_one_returned():
    statuses = iter([503, 503, 503, 200])
    calls = []

    def fn() -> int:
        calls.append(1)
        return next(statuses)

    retrier, _, reasons = make(is_retryable=lambda outcome: outcome == 503)
    assert retrier.call(fn) == 503  # three attempts, all 503: the last result stands
    assert len(calls) == 3
    assert reasons == ["max_attempts"]


def test_non_retryable_errors_are_not_retried():
    retrier, sleeps, reasons = make()
    fn = Flaky(failures=5, error=ValueError("bad request"))
    with pytest.raises(ValueError):
        retrier.call(fn)
    assert fn.calls == 1
    assert sleeps == []
    assert reasons == ["not_retryable"]


def test_full_jitter_sleeps_are_within_bounds_and_follow_the_seeded_random():
    policy = RetryPolicy(max_attempts=6, base_s=0.5, cap_s=3.0, min_attempt_s=0.0, safety_margin_s=0.0)
    retrier, sleeps, _ = make(policy, random=random.Random(7).random)
    with pytest.raises(ConnectionError):
        retrier.call(Flaky(failures=100))
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]  # base * 2**n, capped
    assert len(sleeps) == len(ceilings)
    for slept, ceiling in zip(sleeps, ceilings, strict=True):
        assert 0 <= slept < ceiling
    expected = random.Random(7)
    assert sleeps == [expected.random() * ceiling for ceiling in ceilings]
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed schedule


def test_full_jitter_uses_the_whole_range_up_to_the_cap():
    assert full_jitter(0, 0.1, 2.0, lambda: 0.0) == 0.0
    assert full_jitter(3, 0.1, 2.0, lambda: 0.5) == pytest.approx(0.4)
    assert full_jitter(10, 0.1, 2.0, lambda: 0.999) == pytest.approx(1.998)
    assert full_jitter(10_000, 0.1, 2.0, lambda: 1.0) == 2.0  # huge exponents do not overflow


def test_deadline_stops_retries_that_could_not_finish():
    clock = Clock()
    deadline = clock.now + 5.0
    policy = RetryPolicy(max_attempts=10, base_s=1.0, cap_s=1.0, min_attempt_s=1.0, safety_margin_s=0.5)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    reasons: list[str] = []
    retrier = Retrier(
        policy,
        is_retryable=connection_errors,
        remaining_s=lambda: deadline - clock.now,
        sleep=sleep,
        random=lambda: 0.5,  # every backoff is 0.5 s
        on_give_up=lambda reason, outcome: reasons.append(reason),
    )
    fn = Flaky(failures=100, clock=clock, cost_s=1.0)
    with pytest.raises(ConnectionError):
        retrier.call(fn)
    # t=1 after attempt 1; a retry needs 0.5 sleep + 1.0 attempt + 0.5 margin = 2.0 <= 4.0 left: yes.
    # t=2.5 after attempt 2: 2.0 <= 2.5 left: yes. t=4 after attempt 3: 2.0 > 1.0 left: stop.
    assert fn.calls == 3
    assert reasons == ["deadline"]
    assert clock.now <= deadline - policy.safety_margin_s


def test_no_retry_when_even_the_first_backoff_does_not_fit():
    retrier, sleeps, reasons = make(
        RetryPolicy(max_attempts=3, base_s=1.0, cap_s=1.0, min_attempt_s=1.0, safety_margin_s=0.5),
        remaining_s=lambda: 2.4,
        random=lambda: 0.95,
    )
    fn = Flaky(failures=1)
    with pytest.raises(ConnectionError):
        retrier.call(fn)
    assert fn.calls == 1
    assert sleeps == []
    assert reasons == ["deadline"]


def test_budget_exhaustion_stops_retries_until_calls_refill_it():
    clock = Clock()
    budget = RetryBudget(ratio=0.25, min_per_s=0.0, max_tokens=10, initial_tokens=2, clock=clock)
    retrier, _, reasons = make(budget=budget)

    first = Flaky(failures=100)
    with pytest.raises(ConnectionError):
        retrier.call(first)
    assert first.calls == 3  # two retries spend the two initial tokens; 0.25 deposited is left

    second = Flaky(failures=1)
    with pytest.raises(ConnectionError):
        retrier.call(second)
    assert second.calls == 1  # budget exhausted (0.5 tokens): no retry, though one would have succeeded
    assert reasons[-1] == "budget"

    with pytest.raises(ConnectionError):
        retrier.call(Flaky(failures=1))  # 0.75 tokens: still no retry
    fourth = Flaky(failures=1)
    assert retrier.call(fourth) == "ok"  # its own deposit makes a whole token
    assert fourth.calls == 2
    assert budget.tokens == 0


def test_budget_floor_refills_with_time_and_is_capped():
    clock = Clock()
    budget = RetryBudget(ratio=0.1, min_per_s=0.5, max_tokens=3, initial_tokens=0, clock=clock)
    assert not budget.try_spend()
    clock.now += 2.0
    assert budget.try_spend()
    assert not budget.try_spend()
    clock.now += 3600
    assert budget.tokens == 3


def test_retries_are_a_bounded_share_of_calls_under_a_sustained_outage():
    clock = Clock()
    budget = RetryBudget(ratio=0.1, min_per_s=0.0, max_tokens=10, initial_tokens=0, clock=clock)
    retrier, _, _ = make(budget=budget)
    attempts = 0
    for _ in range(1000):
        fn = Flaky(failures=100)
        with pytest.raises(ConnectionError):
            retrier.call(fn)
        attempts += fn.calls
    retries = attempts - 1000
    assert retries <= 100  # at most 10 % extra load, not 200 % (3 attempts each)


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_s=-1)
