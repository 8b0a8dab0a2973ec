"""Rate limiting: policies and headers, the GCRA token bucket (in memory and on DynamoDB via moto), its call pattern."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cmdgate.ratelimit import (
    QUOTA_EXCEEDED_TYPE,
    DynamoDBRateLimitStore,
    InMemoryRateLimitStore,
    RateLimitDecision,
    RateLimited,
    RateLimitPolicy,
    RateLimitStore,
    TokenBucket,
)
from cmdgate.ratelimit.store import TatWrite
from tests.unit.aws_helpers import CallLog, SerializedClient

TABLE = "unit-ControlTable"  # made by the `table_like` fixture (tests/unit/conftest.py)
T0 = 1_700_000_000.0


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def dynamodb(table_like: Any) -> Any:
    """The control table, shaped like template.yaml's, in in-process moto."""
    table_like("ControlTable")
    return boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> RateLimitStore:
    """Each behaviour test runs against both adapters of the seam."""
    if request.param == "memory":
        return InMemoryRateLimitStore()
    return DynamoDBRateLimitStore(request.getfixturevalue("dynamodb"), TABLE)


def take_many(bucket: TokenBucket, n: int, now: float, policy: RateLimitPolicy, principal: str = "alice") -> list[bool]:
    return [bucket.take(principal, "deploy", policy, now=now).allowed for _ in range(n)]


# -- policy, decision, headers, the 429 ------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quota": 0, "window_s": 60},
        {"quota": 10, "window_s": 0},
        {"quota": -1, "window_s": 60},
        {"quota": True, "window_s": 60},
        {"quota": 1.5, "window_s": 60},
        {"quota": 10, "window_s": 60, "name": ""},
        {"quota": 10, "window_s": 60, "name": 'de"fault'},
        {"quota": 10, "window_s": 60, "name": "a b"},
    ],
)
def test_policy_is_validated(kwargs):
    with pytest.raises(ValueError):
        RateLimitPolicy(**kwargs)


def test_scaled_policy_rounds_down_but_never_below_one():
    assert RateLimitPolicy(600, 60).scaled(0.25, "tightened") == RateLimitPolicy(150, 60, "tightened")
    assert RateLimitPolicy(3, 60).scaled(0.25, "tightened") == RateLimitPolicy(1, 60, "tightened")


def test_headers_of_an_allowed_request_follow_the_ietf_draft_exactly():
    decision = RateLimitDecision(True, RateLimitPolicy(100, 60), remaining=42, reset_s=3)
    assert decision.headers() == {
        "RateLimit-Policy": '"default";q=100;w=60',
        "RateLimit": '"default";r=42;t=3',
    }


def test_headers_of_a_refusal_carry_retry_after():
    decision = RateLimitDecision(False, RateLimitPolicy(5, 60, "tightened"), remaining=0, reset_s=12, retry_after_s=12)
    assert decision.headers() == {
        "RateLimit-Policy": '"tightened";q=5;w=60',
        "RateLimit": '"tightened";r=0;t=12',
        "Retry-After": "12",
    }


@pytest.mark.parametrize(
    ("allowed", "reset_s", "retry_after_s"),
    [(False, 12, 11), (False, 0, 0), (False, 3, None), (True, 3, 3)],
)
def test_a_decision_never_retries_earlier_than_t(allowed, reset_s, retry_after_s):
    with pytest.raises(ValueError):
        RateLimitDecision(allowed, RateLimitPolicy(5, 60), 0, reset_s, retry_after_s)


def test_rate_limited_is_a_quota_exceeded_problem():
    decision = RateLimitDecision(False, RateLimitPolicy(5, 60), remaining=0, reset_s=7, retry_after_s=7)
    error = RateLimited(decision)
    problem = error.to_problem(request_id="req-1")
    assert error.status == 429
    assert problem["type"] == QUOTA_EXCEEDED_TYPE == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert problem["status"] == 429
    assert problem["code"] == "RATE_LIMITED"
    assert problem["violated-policies"] == ["default"]
    assert error.headers == {
        "RateLimit-Policy": '"default";q=5;w=60',
        "RateLimit": '"default";r=0;t=7',
        "Retry-After": "7",
    }
    with pytest.raises(ValueError):
        RateLimited(RateLimitDecision(True, RateLimitPolicy(5, 60), 4, 12))


# -- the bucket's behaviour (both adapters) ----------------------------------------------


def test_first_q_requests_pass_then_refused_with_exact_retry_after(store):
    bucket = TokenBucket(store)
    policy = RateLimitPolicy(5, 60)  # one request per 12 s, bursts of 5
    decisions = [bucket.take("alice", "deploy", policy, now=T0) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 5
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    # t: until the bucket is full again while r > 0; until the next request fits once r = 0.
    assert [d.reset_s for d in decisions] == [12, 24, 36, 48, 12]

    refused = bucket.take("alice", "deploy", policy, now=T0)
    assert not refused.allowed
    assert (refused.remaining, refused.reset_s, refused.retry_after_s) == (0, 12, 12)
    assert refused.headers()["Retry-After"] == "12"

    later = bucket.take("alice", "deploy", policy, now=T0 + 4.5)
    assert (later.allowed, later.reset_s, later.retry_after_s) == (False, 8, 8)  # 7.5 s rounded up


def test_retry_after_is_honest_a_request_at_that_moment_succeeds(store):
    bucket = TokenBucket(store)
    policy = RateLimitPolicy(7, 60)  # 60/7 s is not a whole number of seconds
    take_many(bucket, 7, T0, policy)
    refused = bucket.take("alice", "deploy", policy, now=T0 + 1.3)
    assert refused.retry_after_s is not None
    assert refused.retry_after_s >= refused.reset_s >= 1
    assert not bucket.take("alice", "deploy", policy, now=T0 + 1.3 + refused.retry_after_s - 1).allowed
    assert bucket.take("alice", "deploy", policy, now=T0 + 1.3 + refused.retry_after_s).allowed


def test_the_bucket_refills_one_request_per_interval(store):
    bucket = TokenBucket(store)
    policy = RateLimitPolicy(5, 60)
    take_many(bucket, 5, T0, policy)
    assert not bucket.take("alice", "deploy", policy, now=T0 + 11.999).allowed
    refilled = bucket.take("alice", "deploy", policy, now=T0 + 12)
    assert (refilled.allowed, refilled.remaining, refilled.reset_s) == (True, 0, 12)
    assert not bucket.take("alice", "deploy", policy, now=T0 + 12).allowed
    assert take_many(bucket, 3, T0 + 48, policy) == [True, True, True]
    assert not bucket.take("alice", "deploy", policy, now=T0 + 48).allowed
    # Fully refilled 60 s after the last admitted request's slot.
    assert take_many(bucket, 6, T0 + 108, policy) == [True] * 5 + [False]


def test_refusals_do_not_push_the_bucket_further_back(store):
    bucket = TokenBucket(store)
    policy = RateLimitPolicy(2, 10)
    take_many(bucket, 2, T0, policy)
    for _ in range(50):
        assert not bucket.take("alice", "deploy", policy, now=T0 + 1).allowed
    assert bucket.take("alice", "deploy", policy, now=T0 + 5).allowed


def test_buckets_are_per_principal_and_scope(store):
    bucket = TokenBucket(store)
    policy = RateLimitPolicy(2, 60)
    assert take_many(bucket, 3, T0, policy) == [True, True, False]
    assert bucket.take("alice", "backup", policy, now=T0).allowed
    assert bucket.take("bob", "deploy", policy, now=T0).allowed
    # '#' separates key parts; escaping keeps these two buckets apart.
    assert take_many(bucket, 2, T0, policy, principal="a#b") == [True, True]
    assert bucket.take("a", "b#deploy", policy, now=T0).allowed


def test_an_idle_bucket_never_holds_more_than_q(store):
    bucket = TokenBucket(store)
    policy = RateLimitPolicy(4, 60)
    take_many(bucket, 1, T0, policy)
    after_a_long_idle = T0 + 10 * 86400
    assert take_many(bucket, 6, after_a_long_idle, policy) == [True] * 4 + [False, False]
    decision = TokenBucket(store).take("alice", "deploy", policy, now=after_a_long_idle + 3600)
    assert (decision.remaining, decision.reset_s) == (3, 15)


def test_a_smaller_policy_inherits_the_debt_of_the_bucket(store):
    bucket = TokenBucket(store)
    take_many(bucket, 8, T0, RateLimitPolicy(8, 60))
    # Switching policy (e.g. to a tightened one) must not hand out a fresh burst.
    assert not bucket.take("alice", "deploy", RateLimitPolicy(2, 60, "tightened"), now=T0).allowed


@pytest.mark.parametrize(("quota", "window_s", "seed"), [(7, 60, 1), (1, 1, 2), (10, 3, 3), (3, 3600, 4)])
def test_no_interval_ever_admits_more_than_q_plus_t_times_rate(store, quota, window_s, seed):
    """In any interval of length T at most q + T·q/w requests succeed, on a seeded random timeline."""
    rng = random.Random(seed)
    policy = RateLimitPolicy(quota, window_s)
    buckets = [TokenBucket(store), TokenBucket(store)]  # two "instances" with their own hints
    now_ms = int(T0 * 1000)
    admitted: list[int] = []
    steps = 1000 if isinstance(store, InMemoryRateLimitStore) else 150  # moto costs ~1 ms a call
    for _ in range(steps):
        # Bursts, steady streams and long pauses, on a millisecond grid.
        now_ms += rng.choice(
            [0, 0, 0, 1, rng.randint(1, window_s * 1000 // quota), rng.randint(0, 3 * window_s * 1000)]
        )
        for _ in range(rng.choice([1, 1, 2, quota + 2])):
            if rng.choice(buckets).take("alice", "deploy", policy, now=now_ms / 1000).allowed:
                admitted.append(now_ms)
    assert len(admitted) > 3 * quota  # the timeline exercised the limit, not just idled
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            length_s = (admitted[j] - start) / 1000
            # Exact integer form of: successes in [start, admitted[j]] <= q + T·q/w.
            assert (j - i + 1) * window_s * 1000 <= quota * window_s * 1000 + (admitted[j] - start) * quota, (
                f"{j - i + 1} successes within {length_s} s"
            )


def test_a_steady_client_at_exactly_the_rate_is_never_refused(store):
    bucket = TokenBucket(store)
    policy = RateLimitPolicy(10, 5)  # one per 0.5 s
    assert all(bucket.take("alice", "deploy", policy, now=T0 + i * 0.5).allowed for i in range(200))


# -- concurrency: many instances hammering one bucket at the same instant -------------------


def hammer(make_store: Callable[[], RateLimitStore], *, threads: int = 8, takes: int = 40, quota: int = 25) -> int:
    policy = RateLimitPolicy(quota, 60)
    barrier = threading.Barrier(threads)
    allowed: list[int] = []
    lock = threading.Lock()

    def instance() -> None:
        bucket = TokenBucket(make_store())  # each thread is its own Lambda instance (own hints)
        barrier.wait()
        n = sum(take_many(bucket, takes, T0 + 3600, policy))
        with lock:
            allowed.append(n)

    workers = [threading.Thread(target=instance) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(allowed)


@pytest.mark.parametrize("history", ["new bucket", "idle bucket", "half-used bucket"])
def test_eight_concurrent_instances_admit_exactly_q_on_dynamodb(dynamodb, history):
    client = SerializedClient(dynamodb)  # see SerializedClient: moto itself is not atomic under threads
    if history == "idle bucket":  # a stale TAT in the past: the instances race on the idle reset
        TokenBucket(DynamoDBRateLimitStore(dynamodb, TABLE)).take("alice", "deploy", RateLimitPolicy(25, 60), now=T0)
    if history == "half-used bucket":
        take_many(TokenBucket(DynamoDBRateLimitStore(dynamodb, TABLE)), 10, T0 + 3600, RateLimitPolicy(25, 60))
    allowed = hammer(lambda: DynamoDBRateLimitStore(client, TABLE))
    assert allowed == (15 if history == "half-used bucket" else 25)


def test_eight_concurrent_instances_admit_exactly_q_in_memory():
    store = InMemoryRateLimitStore()
    assert hammer(lambda: store, takes=200) == 25


# -- the DynamoDB adapter: item layout and calls per request ----------------------------------


def test_bucket_item_layout_and_expiry(dynamodb):
    bucket = TokenBucket(DynamoDBRateLimitStore(dynamodb, TABLE))
    policy = RateLimitPolicy(5, 60)
    take_many(bucket, 2, T0, policy)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "rl#alice#deploy"}}, ConsistentRead=True)["Item"]
    assert set(item) == {"pk", "tat", "expires_at"}
    assert int(item["tat"]["N"]) == int((T0 + 24) * 1_000_000)  # integer microseconds
    # Kept at least until the TAT has passed (a full bucket), so TTL never forgets a debt.
    assert int(item["expires_at"]["N"]) >= T0 + 24 + 60


def test_a_take_of_one_bucket_never_shortens_the_life_of_another_in_the_item(dynamodb):
    bucket = TokenBucket(DynamoDBRateLimitStore(dynamodb, TABLE))
    caller, daily = RateLimitPolicy(100, 60), RateLimitPolicy(2, 86_400, "command.nightly")
    bucket.take_all("alice", "api", [("", caller), ("nightly", daily)], now=T0)
    bucket.take_all("alice", "api", [("", caller)], now=T0 + 1)  # a plain request rewrites the expiry
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "rl#alice#api"}}, ConsistentRead=True)["Item"]
    # The command's TAT is 12 h ahead: TTL must not reset its bucket to full before then.
    assert int(item["expires_at"]["N"]) >= int(item["tat#nightly"]["N"]) // 1_000_000 + 60


def test_a_window_beyond_a_day_is_refused():
    with pytest.raises(ValueError, match="at most 86400"):
        RateLimitPolicy(1, 86_401)


def test_a_bucket_removed_by_ttl_reads_as_full(dynamodb):
    bucket = TokenBucket(DynamoDBRateLimitStore(dynamodb, TABLE))
    policy = RateLimitPolicy(3, 60)
    take_many(bucket, 3, T0, policy)
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "rl#alice#deploy"}})
    assert take_many(bucket, 4, T0 + 1, policy) == [True, True, True, False]


@pytest.fixture
def counted(dynamodb: Any) -> tuple[Callable[[], TokenBucket], CallLog]:
    """Instances sharing one client whose DynamoDB calls are logged."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    log = CallLog(client)
    return (lambda: TokenBucket(DynamoDBRateLimitStore(client, TABLE))), log


def test_busy_bucket_costs_one_update_item_allowed_or_refused(counted):
    new_instance, log = counted
    bucket, policy = new_instance(), RateLimitPolicy(3, 60)
    bucket.take("alice", "deploy", policy, now=T0)
    log.take()
    assert bucket.take("alice", "deploy", policy, now=T0).allowed
    assert log.take() == ["UpdateItem"]
    assert bucket.take("alice", "deploy", policy, now=T0 + 1).allowed
    assert log.take() == ["UpdateItem"]
    refused = bucket.take("alice", "deploy", policy, now=T0 + 2)
    assert not refused.allowed
    assert refused.retry_after_s == 18  # exact, from the TAT the failed write returned
    assert log.take() == ["UpdateItem"]


def test_idle_and_new_buckets_cost_one_update_item(counted):
    new_instance, log = counted
    bucket, policy = new_instance(), RateLimitPolicy(3, 60)
    assert bucket.take("alice", "deploy", policy, now=T0).allowed  # never seen: no item
    assert log.take() == ["UpdateItem"]
    assert bucket.take("alice", "deploy", policy, now=T0 + 600).allowed  # seen, TAT long past
    assert log.take() == ["UpdateItem"]
    assert new_instance().take("alice", "deploy", policy, now=T0 + 1200).allowed  # not seen here, idle
    assert log.take() == ["UpdateItem"]


def test_a_wrong_first_guess_costs_a_second_update_item(counted):
    new_instance, log = counted
    first, second, policy = new_instance(), new_instance(), RateLimitPolicy(3, 60)
    first.take("alice", "deploy", policy, now=T0)
    # `second` has never seen the bucket and guesses idle; the failed write shows it busy.
    assert second.take("alice", "deploy", policy, now=T0).allowed
    log.take()
    # A refusal is known from the failed write alone, whichever branch was tried first.
    third = new_instance()
    third.take("alice", "deploy", policy, now=T0)
    assert log.take() == ["UpdateItem", "UpdateItem"]
    assert not new_instance().take("alice", "deploy", policy, now=T0).allowed
    assert log.take() == ["UpdateItem"]


# -- the storage seam's contract (both adapters) -------------------------------------------


def busy(now_us: int, max_tat_us: int, slot: str = "", interval_us: int = 10) -> TatWrite:
    return TatWrite(slot, True, now_us, interval_us, max_tat_us)


def idle(now_us: int, slot: str = "", interval_us: int = 10) -> TatWrite:
    return TatWrite(slot, False, now_us, interval_us, 0)


def test_busy_write_only_moves_a_tat_between_now_and_the_limit(store):
    assert store.take("p", "s", [busy(1_000, 1_050)], expires_at=100) == (False, {"": None})  # no bucket yet
    assert store.take("p", "s", [idle(900)], expires_at=100) == (True, {"": 910})
    assert store.take("p", "s", [busy(1_000, 1_050)], expires_at=100) == (False, {"": 910})  # stale: no banked credit
    assert store.take("p", "s", [idle(1_000)], expires_at=100) == (True, {"": 1_010})
    assert store.take("p", "s", [busy(1_000, 1_050)], expires_at=100) == (True, {"": 1_020})
    assert store.take("p", "s", [busy(1_000, 1_019)], expires_at=100) == (False, {"": 1_020})
    assert store.take("p", "s", [busy(1_020, 1_020)], expires_at=100) == (True, {"": 1_030})


def test_idle_write_refuses_a_bucket_that_is_not_behind_the_clock(store):
    assert store.take("p", "s", [idle(1_000)], expires_at=100) == (True, {"": 1_010})
    assert store.take("p", "s", [idle(1_010)], expires_at=100) == (False, {"": 1_010})
    assert store.take("p", "s", [idle(1_011)], expires_at=100) == (True, {"": 1_021})


def test_several_buckets_of_one_item_move_together_or_not_at_all(store):
    assert store.take("p", "s", [idle(1_000), idle(1_000, "cmd", 100)], expires_at=100) == (
        True,
        {"": 1_010, "cmd": 1_100},
    )
    # The command's bucket is full (its limit is tighter): the caller's must not move either.
    refused = store.take("p", "s", [busy(1_000, 1_050), busy(1_000, 1_050, "cmd", 100)], expires_at=100)
    assert refused == (False, {"": 1_010, "cmd": 1_100})
    assert store.take("p", "s", [busy(1_000, 1_050)], expires_at=100) == (True, {"": 1_020})


# -- several policies at once (a caller's and a command's own) -------------------------------


def test_a_command_limit_tighter_than_the_callers_refuses_first_and_is_reported(store):
    bucket = TokenBucket(store, clock=lambda: T0)
    caller, own = RateLimitPolicy(10, 60), RateLimitPolicy(2, 60, "command.deploy")
    verdicts = [bucket.take_all("alice", "api", [("", caller), ("deploy", own)]) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    first = verdicts[0].headers()
    assert first["RateLimit-Policy"] == '"default";q=10;w=60, "command.deploy";q=2;w=60'
    assert first["RateLimit"].startswith('"command.deploy";r=1;')
    refused = verdicts[2]
    assert [d.policy.name for d in refused.refused] == ["command.deploy"]
    assert int(refused.headers()["Retry-After"]) >= 1
    # The refusal took nothing from the caller's bucket: 8 other requests still fit.
    others = [bucket.take_all("alice", "api", [("", caller)]).allowed for _ in range(9)]
    assert others == [True] * 8 + [False]


def test_a_callers_quota_bounds_all_its_commands_together(store):
    bucket = TokenBucket(store, clock=lambda: T0)
    caller = RateLimitPolicy(5, 60)
    admitted = [
        bucket.take_all("alice", "api", [("", caller), *([(name, RateLimitPolicy(100, 60, "c"))] if name else [])])
        for name in ["a", "b", "", "c", "d", "e", "f"]
    ]
    assert [v.allowed for v in admitted] == [True] * 5 + [False] * 2
    assert admitted[-1].headers()["RateLimit"].startswith('"default";r=0;')
