"""Adaptive tightening: outcome windows per principal (in memory and on DynamoDB via moto), cooldown, call counts."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from cmdgate.ratelimit import (
    AdaptiveConfig,
    AdaptiveLimiter,
    DynamoDBRateLimitStore,
    InMemoryRateLimitStore,
    RateLimitPolicy,
    RateLimitStore,
    TokenBucket,
)
from tests.unit.aws_helpers import CallLog

# Most tests count every outcome as it comes; batching has its own test.
UNBATCHED = AdaptiveConfig(success_batch=1)
TABLE = "unit-ControlTable"  # made by the `table_like` fixture (tests/unit/conftest.py)
START = 1_700_000_040.0  # the start of a 60 s sub-window
BASE = RateLimitPolicy(600, 60)
TIGHTENED = RateLimitPolicy(150, 60, "tightened")


@pytest.fixture
def dynamodb(table_like: Any) -> Any:
    """The control table, shaped like template.yaml's, in in-process moto."""
    table_like("ControlTable")
    return boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> RateLimitStore:
    if request.param == "memory":
        return InMemoryRateLimitStore()
    return DynamoDBRateLimitStore(request.getfixturevalue("dynamodb"), TABLE)


def record_all(limiter: AdaptiveLimiter, statuses: list[int], start: float, principal: str = "alice") -> float:
    """One outcome per second from `start`; returns the time after the last."""
    now = start
    for status in statuses:
        limiter.record(principal, status, now=now)
        now += 1
    return now


# -- tightening ---------------------------------------------------------------------


def test_a_principal_refused_mostly_with_403_gets_the_tightened_policy(store):
    limiter = AdaptiveLimiter(store, UNBATCHED)
    now = record_all(limiter, [403] * 16 + [200] * 4, START)
    record_all(limiter, [200] * 30, START, principal="bob")
    assert limiter.effective_policy("alice", BASE, now=now) == TIGHTENED
    assert limiter.effective_policy("bob", BASE, now=now) == BASE
    assert limiter.is_tightened("alice", now=now)


def test_fewer_than_min_requests_never_tighten(store):
    limiter = AdaptiveLimiter(store, UNBATCHED)
    now = record_all(limiter, [403] * 19, START)
    assert limiter.effective_policy("alice", BASE, now=now) == BASE
    limiter.record("alice", 403, now=now)
    assert limiter.effective_policy("alice", BASE, now=now) == TIGHTENED


@pytest.mark.parametrize(("refused", "tightened"), [(10, False), (11, True)])
def test_the_refused_share_must_be_over_the_ratio(store, refused, tightened):
    limiter = AdaptiveLimiter(store, UNBATCHED)
    now = record_all(limiter, [200] * (20 - refused) + [422] * refused, START)
    assert limiter.is_tightened("alice", now=now) is tightened


@pytest.mark.parametrize(
    ("status", "counts"), [(401, True), (403, True), (422, True), (429, True), (404, False), (500, False), (400, False)]
)
def test_which_statuses_count_as_refused(store, status, counts):
    limiter = AdaptiveLimiter(store, UNBATCHED)
    now = record_all(limiter, [status] * 20, START)
    assert limiter.is_tightened("alice", now=now) is counts


def test_a_tightening_lasts_the_cooldown_then_good_standing_restores_the_base_policy(store):
    limiter = AdaptiveLimiter(store, UNBATCHED)
    record_all(limiter, [403] * 20, START)  # tightened at START + 19, until START + 319
    now = record_all(limiter, [200] * 40, START + 200)
    assert limiter.effective_policy("alice", BASE, now=now) == TIGHTENED  # good requests, but still cooling down
    now = record_all(limiter, [200] * 25, START + 320)
    assert limiter.effective_policy("alice", BASE, now=now) == BASE


def test_a_principal_still_misbehaving_after_the_cooldown_stays_tightened(store):
    limiter = AdaptiveLimiter(store, UNBATCHED)
    record_all(limiter, [403] * 20, START)  # until START + 319
    now = record_all(limiter, [403] * 60, START + 290)  # the window is bad when the cooldown ends
    assert limiter.is_tightened("alice", now=START + 330)
    assert limiter.is_tightened("alice", now=now)
    # Re-armed by the first bad record once it lapsed (START + 319), and then over at START + 619.
    assert limiter.is_tightened("alice", now=START + 618)
    assert not limiter.is_tightened("alice", now=START + 620)


def test_the_previous_sub_window_counts_by_its_overlap(store):
    limiter = AdaptiveLimiter(store, UNBATCHED)
    record_all(limiter, [403] * 30, START + 30)  # the second half of sub-window k
    record_all(limiter, [200] * 10, START + 60)  # the start of sub-window k + 1
    outcomes = store.load_outcomes("alice")
    assert limiter.window_counts(outcomes, START + 90) == (25.0, 15.0)  # k weighted by 1/2
    assert limiter.window_counts(outcomes, START + 120) == (10.0, 0.0)  # k + 2: only k + 1, in full
    assert limiter.window_counts(outcomes, START + 180) == (0.0, 0.0)  # k + 3: both gone


def test_tightening_composes_with_the_bucket_without_a_fresh_burst(store):
    limiter, bucket = AdaptiveLimiter(store, UNBATCHED), TokenBucket(store)
    base = RateLimitPolicy(40, 60)  # 1.5 s per request
    assert all(bucket.take("alice", "deploy", base, now=START).allowed for _ in range(20))  # 30 s of debt
    for _ in range(20):
        limiter.record("alice", 429, now=START)
    policy = limiter.effective_policy("alice", base, now=START)
    assert policy == RateLimitPolicy(10, 60, "tightened")  # 6 s per request
    # The debt carries over: 5 more fit in the tightened burst, not a fresh 10.
    decisions = [bucket.take("alice", "deploy", policy, now=START) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].headers() == {
        "RateLimit-Policy": '"tightened";q=10;w=60',
        "RateLimit": '"tightened";r=0;t=6',
        "Retry-After": "6",
    }


def test_config_is_validated():
    assert AdaptiveConfig() == AdaptiveConfig(
        window_s=60, min_requests=20, refused_ratio=0.5, tighten_factor=0.25, cooldown_s=300
    )
    for bad in ({"window_s": 0}, {"min_requests": 0}, {"refused_ratio": 1.0}, {"tighten_factor": 0}, {"refresh_s": -1}):
        with pytest.raises(ValueError):
            AdaptiveConfig(**bad)


class BrokenStore(InMemoryRateLimitStore):
    def add_outcome(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("control table unavailable")

    def load_outcomes(self, principal_id: str) -> Any:
        raise RuntimeError("control table unavailable")


def test_store_failures_never_fail_the_request():
    limiter = AdaptiveLimiter(BrokenStore())
    limiter.record("alice", 403, now=START)  # logged and dropped
    assert limiter.effective_policy("alice", BASE, now=START) == BASE


# -- shared through DynamoDB: layout, other instances, calls per request ----------------------


def test_outcome_item_layout(dynamodb):
    limiter = AdaptiveLimiter(DynamoDBRateLimitStore(dynamodb, TABLE), UNBATCHED)
    record_all(limiter, [200, 403], START)
    record_all(limiter, [403] * 20, START + 60)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "rla#alice"}}, ConsistentRead=True)["Item"]
    k = int(START // 60)
    slot, other = k % 2, (k + 1) % 2
    assert {name: int(item[name]["N"]) for name in (f"w{slot}", f"n{slot}", f"r{slot}")} == {
        f"w{slot}": k,
        f"n{slot}": 2,
        f"r{slot}": 1,
    }
    assert {name: int(item[name]["N"]) for name in (f"w{other}", f"n{other}", f"r{other}")} == {
        f"w{other}": k + 1,
        f"n{other}": 20,
        f"r{other}": 20,
    }
    # Crossed at START + 78 (19 here + 2 of the last sub-window weighted by 42/60 >= 20 requests).
    assert float(item["tightened_until"]["N"]) == START + 78 + 300
    assert int(item["expires_at"]["N"]) >= START + 78 + 300


def test_another_instance_sees_the_tightening(dynamodb):
    first = AdaptiveLimiter(DynamoDBRateLimitStore(dynamodb, TABLE), UNBATCHED)
    second = AdaptiveLimiter(DynamoDBRateLimitStore(dynamodb, TABLE), UNBATCHED)
    assert second.effective_policy("alice", BASE, now=START) == BASE  # cached as fine for refresh_s
    now = record_all(first, [403] * 20, START)
    assert second.effective_policy("alice", BASE, now=now) == TIGHTENED  # its copy was 20 s old: re-read


def test_calls_per_request(dynamodb):
    client = boto3.client("dynamodb", region_name="us-east-1")
    log = CallLog(client)
    limiter = AdaptiveLimiter(DynamoDBRateLimitStore(client, TABLE), UNBATCHED)

    assert limiter.effective_policy("alice", BASE, now=START) == BASE
    assert log.take() == ["GetItem"]  # nothing cached yet
    limiter.record("alice", 200, now=START)
    assert log.take() == ["UpdateItem"]  # a new sub-window, predicted from the read: starts the slot
    limiter.record("alice", 200, now=START + 1)
    assert log.take() == ["UpdateItem"]  # atomic ADD
    limiter.effective_policy("alice", BASE, now=START + 2)
    assert log.take() == []  # the record() answer is the cache

    limiter.record("alice", 200, now=START + 60)
    assert log.take() == ["UpdateItem"]  # the next sub-window, predicted: starts the slot

    other = AdaptiveLimiter(DynamoDBRateLimitStore(client, TABLE), UNBATCHED)
    other.record("alice", 200, now=START + 61)
    assert log.take() == ["UpdateItem", "UpdateItem"]  # guessed a new slot; the failed write said add

    for second in range(16):
        limiter.record("alice", 403, now=START + 62 + second)
        assert log.take() == ["UpdateItem"]
    # 19 in this sub-window + 2 of the last weighted by 42/60 = 20.4 requests, 17 refused: crosses.
    limiter.record("alice", 403, now=START + 78)
    assert log.take() == ["UpdateItem", "UpdateItem"]  # the count, then the tightening
    limiter.record("alice", 403, now=START + 79)
    assert log.take() == ["UpdateItem"]  # already tightened: nothing more to set
    assert limiter.effective_policy("alice", BASE, now=START + 80) == TIGHTENED
    assert log.take() == []


def test_successes_are_written_in_batches_and_a_refusal_flushes_at_once(dynamodb: Any) -> None:
    log = CallLog(dynamodb)
    limiter = AdaptiveLimiter(DynamoDBRateLimitStore(dynamodb, TABLE), AdaptiveConfig(success_batch=5))
    log.take()
    for _ in range(4):
        limiter.record("p", 200, now=START)
    assert log.take() == []  # batched: the common request costs no call
    limiter.record("p", 200, now=START)
    assert log.take() == ["UpdateItem"]
    limiter.record("p", 200, now=START + 1)
    limiter.record("p", 403, now=START + 1)
    assert log.take() == ["UpdateItem"]
    requests, refused = limiter.window_counts(limiter._fresh("p", START + 1), START + 1)
    assert (requests, refused) == (7, 1)


def test_an_old_batch_is_written_by_the_next_success(dynamodb: Any) -> None:
    log = CallLog(dynamodb)
    limiter = AdaptiveLimiter(DynamoDBRateLimitStore(dynamodb, TABLE), AdaptiveConfig(success_batch_s=10))
    log.take()
    limiter.record("p", 200, now=START)
    limiter.record("p", 200, now=START + 9)
    assert log.take() == []
    limiter.record("p", 200, now=START + 10)
    assert log.take() == ["UpdateItem"]
