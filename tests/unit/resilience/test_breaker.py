"""Circuit breaker: the state machine (in memory), then the shared DynamoDB store and its call pattern (moto)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cmdgate.breaker import (
    BreakerConfig,
    BreakerRecord,
    BreakerStore,
    CircuitBreaker,
    CircuitOpen,
    DynamoDBBreakerStore,
    InMemoryBreakerStore,
    open_breakers,
)
from tests.unit.aws_helpers import CallLog

TABLE = "unit-ControlTable"  # made by the `table_like` fixture


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("dependency failed")


def ok() -> str:
    return "ok"


def config(**overrides: Any) -> BreakerConfig:
    values: dict[str, Any] = {
        "failure_rate_threshold": 0.5,
        "min_calls": 5,
        "window_s": 60,
        "bucket_s": 10,
        "open_s": 30,
        "half_open_max_probes": 1,
        "probe_timeout_s": 20,
        "refresh_s": 0,
    }
    values.update(overrides)
    return BreakerConfig(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(store: BreakerStore, clock: Clock, name: str = "downstream", **overrides: Any) -> CircuitBreaker:
    return CircuitBreaker(name, store, config(**overrides), clock)


def trip(b: CircuitBreaker) -> None:
    for _ in range(b.config.min_calls):
        with pytest.raises(Boom):
            b.call(fail)
    assert b.state() == "open"


# -- the state machine ------------------------------------------------------------


def test_does_not_trip_before_min_calls_even_at_a_100_percent_failure_rate(clock):
    b = breaker(InMemoryBreakerStore(), clock)
    for _ in range(4):
        with pytest.raises(Boom):
            b.call(fail)
    assert b.state() == "closed"
    with pytest.raises(Boom):
        b.call(fail)  # the fifth call reaches min_calls
    assert b.state() == "open"


def test_trips_at_the_failure_rate_threshold_not_below(clock):
    b = breaker(InMemoryBreakerStore(), clock)
    for _ in range(6):
        b.call(ok)
    for _ in range(5):
        with pytest.raises(Boom):
            b.call(fail)
    assert b.state() == "closed"  # 5 / 11 = 45 %
    with pytest.raises(Boom):
        b.call(fail)
    assert b.state() == "open"  # 6 / 12 = 50 %


def test_old_failures_leave_the_rolling_window(clock):
    b = breaker(InMemoryBreakerStore(), clock)
    for _ in range(4):
        with pytest.raises(Boom):
            b.call(fail)
    clock.advance(70)  # the four failures are now older than the 60 s window
    with pytest.raises(Boom):
        b.call(fail)
    assert b.state() == "closed"


def test_open_breaker_refuses_without_calling_and_says_when_to_retry(clock):
    b = breaker(InMemoryBreakerStore(), clock, "internal-ledger")
    trip(b)
    clock.advance(10)
    calls = []
    with pytest.raises(CircuitOpen) as refused:
        b.call(lambda: calls.append(1))
    assert calls == []
    error = refused.value
    assert error.status == 503
    assert error.code == "DEPENDENCY_UNAVAILABLE"
    assert error.retry_after_s == 20  # seconds until half-open
    assert error.headers == {"Retry-After": "20"}
    problem = error.to_problem()
    assert problem["status"] == 503 and problem["code"] == "DEPENDENCY_UNAVAILABLE"
    assert "internal-ledger" not in str(problem)  # the breaker name stays internal


def test_half_open_admits_a_limited_number_of_probes(clock):
    b = breaker(InMemoryBreakerStore(), clock, half_open_max_probes=2)
    trip(b)
    clock.advance(30)
    assert b.state() == "half_open"
    with b.guard(), b.guard():  # two probes in flight
        with pytest.raises(CircuitOpen) as refused:
            b.call(ok)
        assert refused.value.retry_after_s == 1


def test_a_successful_probe_closes_and_clears_the_window(clock):
    b = breaker(InMemoryBreakerStore(), clock)
    trip(b)
    clock.advance(30)
    assert b.call(ok) == "ok"
    assert b.state() == "closed"
    with pytest.raises(Boom):
        b.call(fail)  # the failures that tripped it are forgotten: 1 failure in 1 call < min_calls
    assert b.state() == "closed"


def test_a_failed_probe_reopens_for_another_open_period(clock):
    b = breaker(InMemoryBreakerStore(), clock)
    trip(b)
    clock.advance(31)
    with pytest.raises(Boom):
        b.call(fail)
    assert b.state() == "open"
    with pytest.raises(CircuitOpen) as refused:
        b.call(ok)
    assert refused.value.retry_after_s == 30


def test_a_probe_that_never_reports_does_not_wedge_the_breaker(clock):
    store = InMemoryBreakerStore()
    lost, survivor = breaker(store, clock, "dep"), breaker(store, clock, "dep")
    trip(lost)
    clock.advance(30)
    abandoned = lost.guard()
    abandoned.__enter__()  # this instance takes the only probe, then dies
    with pytest.raises(CircuitOpen):
        survivor.call(ok)
    clock.advance(20)  # probe_timeout_s: a new round starts
    assert survivor.call(ok) == "ok"
    assert survivor.state() == "closed"


def test_results_can_count_as_failures(clock):
    b = breaker(InMemoryBreakerStore(), clock)
    for _ in range(5):
        assert b.call(lambda: 503, failed=lambda status: status >= 500) == 503
    assert b.state() == "open"


def test_exceptions_that_are_not_failures_do_not_trip(clock):
    b = breaker(InMemoryBreakerStore(), clock, is_failure=lambda exc: not isinstance(exc, KeyError))
    for _ in range(10):
        with pytest.raises(KeyError), b.guard():
            raise KeyError("the caller's mistake, not the dependency's")
    assert b.state() == "closed"


def test_open_breakers_reports_open_and_half_open_without_io(clock):
    store = InMemoryBreakerStore()
    healthy, failing = breaker(store, clock, "healthy"), breaker(store, clock, "failing")
    healthy.call(ok)
    trip(failing)
    clock.advance(5)
    report = {s.name: s for s in open_breakers()}
    assert "healthy" not in report
    assert report["failing"].state == "open"
    assert report["failing"].retry_after_s == 25
    clock.advance(30)
    assert {s.name: s.state for s in open_breakers()}["failing"] == "half_open"


class BrokenStore(BreakerStore):
    """A control table that is down."""

    def load(self, name: str) -> BreakerRecord:
        raise ConnectionError("control table unavailable")

    def add_outcomes(self, name: str, **kwargs: Any) -> tuple[bool, BreakerRecord]:
        raise ConnectionError("control table unavailable")

    def transition(self, name: str, **kwargs: Any) -> tuple[bool, BreakerRecord]:
        raise ConnectionError("control table unavailable")

    def acquire_probe(self, name: str, **kwargs: Any) -> tuple[bool, BreakerRecord]:
        raise ConnectionError("control table unavailable")


def test_a_store_outage_fails_open(clock):
    b = breaker(BrokenStore(), clock)
    for _ in range(20):
        assert b.call(ok) == "ok"
    assert b.state() == "closed"


# -- shared through DynamoDB (moto, in process) -----------------------------------


@pytest.fixture
def dynamodb(table_like: Any) -> Any:
    """The control table, shaped like template.yaml's, in in-process moto (tests/unit/conftest.py)."""
    table_like("ControlTable")
    return boto3.client("dynamodb", region_name="us-east-1")


def new_instance(clock: Clock, name: str = "github", **overrides: Any) -> tuple[CircuitBreaker, CallLog]:
    """One 'Lambda instance': its own client, store and breaker on the shared table."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    log = CallLog(client)
    return CircuitBreaker(name, DynamoDBBreakerStore(client, TABLE), config(**overrides), clock), log


def test_two_breakers_sharing_one_store_see_each_others_open_state(dynamodb, clock):
    store = DynamoDBBreakerStore(dynamodb, TABLE)
    first = CircuitBreaker("github", store, config(refresh_s=5), clock)
    second = CircuitBreaker("github", store, config(refresh_s=5), clock)
    assert second.call(ok) == "ok"  # second now caches "closed"
    trip(first)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "breaker#github"}})["Item"]
    assert item["state"]["S"] == "open"
    assert int(item["expires_at"]["N"]) > clock.now  # TTL attribute
    clock.advance(5)  # second's snapshot is now stale and is re-read
    with pytest.raises(CircuitOpen):
        second.call(ok)
    third = CircuitBreaker("github", store, config(), clock)
    assert third.state() == "open"


def test_a_closed_breaker_makes_no_dynamodb_call_after_the_first_refresh(dynamodb, clock):
    b, log = new_instance(clock, refresh_s=5)
    b.call(ok)
    assert log.take() == ["GetItem"]  # the first refresh
    for _ in range(200):
        assert b.call(ok) == "ok"
        clock.advance(0.02)  # 4 s of traffic, within refresh_s
    assert log.take() == []
    clock.advance(1.5)
    b.call(ok)
    assert log.take() == ["UpdateItem"]  # one flush of the batched successes, which also re-reads the state
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "breaker#github"}})["Item"]
    calls = sum(int(v["N"]) for k, v in item.items() if k.startswith("c_0_"))
    assert calls == 201


def test_dynamodb_call_pattern_for_failures_trips_and_open_state(dynamodb, clock):
    b, log = new_instance(clock, refresh_s=5, min_calls=3)
    b.call(ok)
    log.take()
    with pytest.raises(Boom):
        b.call(fail)
    assert log.take() == ["UpdateItem"]  # flush including the failure: 2 calls, 1 failure
    with pytest.raises(Boom):
        b.call(fail)
    assert log.take() == ["UpdateItem", "UpdateItem"]  # flush, then the conditional trip
    for _ in range(50):
        with pytest.raises(CircuitOpen):
            b.call(ok)
    assert log.take() == []  # refused from the cached open state


def test_losing_the_race_to_trip_costs_no_extra_read(dynamodb, clock):
    first, _ = new_instance(clock, refresh_s=5, min_calls=3)
    second, second_log = new_instance(clock, refresh_s=5, min_calls=3)
    first.call(ok)
    second.call(ok)
    second_log.take()
    with pytest.raises(Boom):
        first.call(fail)
    with pytest.raises(Boom):
        first.call(fail)
    assert first.state() == "open"
    with pytest.raises(Boom):
        second.call(fail)  # its flush is refused (version moved on) and returns the open record
    assert second_log.take() == ["UpdateItem"]
    with pytest.raises(CircuitOpen):
        second.call(ok)
    assert second_log.take() == []


def test_half_open_probe_permits_are_shared_across_instances(dynamodb, clock):
    first, _ = new_instance(clock)
    second, _ = new_instance(clock)
    trip(first)
    clock.advance(30)
    with first.guard(), pytest.raises(CircuitOpen):  # first holds the only probe permit
        second.call(ok)
    assert first.state() == "closed"
    assert second.call(ok) == "ok"


def test_the_dynamodb_store_keeps_counts_per_version_and_drops_stale_buckets(dynamodb, clock):
    store = DynamoDBBreakerStore(dynamodb, TABLE)
    applied, record = store.add_outcomes("x", version=0, counts={(0, 7): (3, 1)}, drop=(), now=clock.now)
    assert applied and record.buckets == {(0, 7): (3, 1)}
    applied, record = store.add_outcomes("x", version=0, counts={(0, 8): (1, 0)}, drop=[(0, 7)], now=clock.now)
    assert applied and record.buckets == {(0, 8): (1, 0)}
    applied, record = store.transition("x", version=5, state="open", opened_until=1.0, drop=(), now=clock.now)
    assert not applied and record == BreakerRecord(version=0, buckets={(0, 8): (1, 0)})
    applied, record = store.acquire_probe("x", version=0, now=clock.now, max_probes=1)
    assert not applied  # a closed breaker has no probes


# -- alerting when a breaker opens -------------------------------------------------------


def test_the_instance_that_opens_a_breaker_alerts_once(clock):
    from cmdgate.breaker.alerting import AlertingBreakerStore

    opened: list[str] = []
    store = AlertingBreakerStore(InMemoryBreakerStore(), opened.append)
    first, second = breaker(store, clock), breaker(store, clock)
    trip(first)
    for _ in range(5):  # the other instance's failures find the breaker open already
        with pytest.raises((Boom, CircuitOpen)):
            second.call(fail)
    assert opened == ["downstream"]
    clock.now += 31  # half-open: the probe fails and the breaker opens again, alerted again (deduplicated later)
    with pytest.raises(Boom):
        first.call(fail)
    assert opened == ["downstream", "downstream"]


def test_an_alert_that_fails_never_fails_the_guarded_call(clock):
    from cmdgate.breaker.alerting import AlertingBreakerStore

    def broken(name: str) -> None:
        raise RuntimeError("sns down")

    b = breaker(AlertingBreakerStore(InMemoryBreakerStore(), broken), clock)
    trip(b)  # each call raises Boom, never RuntimeError
    with pytest.raises(CircuitOpen):
        b.call(ok)


def test_each_applied_move_is_counted_by_state(clock, capsys):
    from cmdgate.breaker.alerting import AlertingBreakerStore

    first = breaker(AlertingBreakerStore(InMemoryBreakerStore(), lambda name: None), clock)
    trip(first)
    clock.now += 31  # half-open: a probe that succeeds closes it
    assert first.call(ok) == "ok"
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "BreakerStateChanges" in line]
    assert [(e["state"], e["BreakerStateChanges"]) for e in emitted] == [("open", [1.0]), ("closed", [1.0])]
