"""Lease locks: acquire/heartbeat/release, takeover with larger fences, fenced writes, races, call counts."""

from __future__ import annotations

import random
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cmdgate.locks import (
    DynamoDBLockStore,
    InMemoryLockStore,
    Lease,
    LeaseLock,
    LockConfig,
    LockError,
    LockHeld,
    LockLost,
    LockManager,
    LockStore,
    fence_condition,
    fenced_update,
)
from cmdgate.locks.store import dynamodb as dynamodb_store
from tests.unit.aws_helpers import CallLog, SerializedClient

TABLE = "unit-ControlTable"  # made by the `table_like` fixture (tests/unit/conftest.py)
T0 = 1_700_000_000.0
FLOOR = int(T0 * 1000)  # a new lock item starts its fence at the clock in milliseconds


# -- fixtures and helpers -------------------------------------------------------------


class FakeClock:
    """Wall clock under the test's control; `sleep` advances it and records the delay."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def dynamodb(table_like: Any) -> Any:
    """The control table, shaped like template.yaml's, in in-process moto."""
    table_like("ControlTable")
    return boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> LockStore:
    """Each behaviour test runs against both adapters of the seam."""
    if request.param == "memory":
        return InMemoryLockStore()
    return DynamoDBLockStore(request.getfixturevalue("dynamodb"), TABLE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def locks(store: LockStore, clock: FakeClock) -> LockManager:
    return LockManager(store, LockConfig(), clock, sleep=clock.sleep, rng=random.Random(7))


# -- acquire and release ---------------------------------------------------------------


def test_acquire_gives_a_lease_with_a_fence_and_release_frees_the_lock(locks, clock):
    lease = locks.acquire("deploy", "alice")
    assert lease == Lease("deploy", "alice", FLOOR + 1, T0 + 10)

    locks.release(lease)
    record = locks.current("deploy")
    assert record is not None
    assert (record.owner, record.fence, record.lease_until) == ("alice", FLOOR + 1, 0.0)
    assert not record.held_at(clock())

    again = locks.acquire("deploy", "bob")
    assert again.fence == lease.fence + 1
    assert again.owner == "bob"


def test_locks_are_independent(locks):
    a = locks.acquire("a", "alice")
    b = locks.acquire("b", "alice")
    assert a.fence == b.fence == FLOOR + 1


def test_second_owner_is_refused_with_the_holder_and_retry_after(locks, clock):
    locks.acquire("deploy", "alice", lease_s=30)
    clock.advance(12.5)
    with pytest.raises(LockHeld) as refused:
        locks.acquire("deploy", "bob")
    assert refused.value.holder == "alice"
    assert refused.value.retry_after_s == pytest.approx(17.5)
    assert refused.value.status == 409
    assert refused.value.headers == {"Retry-After": "18"}
    assert "alice" not in str(refused.value.to_problem())  # the holder stays out of the response body


def test_the_same_owner_does_not_reenter_a_live_lease(locks):
    locks.acquire("deploy", "alice")
    with pytest.raises(LockHeld):
        locks.acquire("deploy", "alice")


def test_an_expired_lease_is_taken_over_with_a_larger_fence(locks, clock):
    first = locks.acquire("deploy", "alice", lease_s=5)
    clock.advance(4.999)
    with pytest.raises(LockHeld):
        locks.acquire("deploy", "bob")
    clock.advance(0.001)  # exactly at lease end: expired
    second = locks.acquire("deploy", "bob")
    assert second.owner == "bob"
    assert second.fence > first.fence


def test_lease_length_is_capped_by_max_lease(locks):
    assert locks.acquire("deploy", "alice", lease_s=600).expires_at == pytest.approx(T0 + 60)


def test_lease_is_capped_by_the_invocations_remaining_time(locks):
    lease = locks.acquire("deploy", "alice", lease_s=30, remaining_s=lambda: 4.0)
    assert lease.expires_at == pytest.approx(T0 + 3.0)  # 4 s left, minus the 1 s safety margin


def test_no_lease_when_the_invocation_has_no_time_left(store, clock):
    locks = LockManager(store, LockConfig(), clock)
    with pytest.raises(LockError) as error:
        locks.acquire("deploy", "alice", remaining_s=lambda: 0.8)
    assert type(error.value) is LockError
    assert locks.current("deploy") is None  # nothing was written


@pytest.mark.parametrize("lease_s", [0, -1])
def test_a_lease_length_must_be_positive(locks, lease_s):
    with pytest.raises(ValueError):
        locks.acquire("deploy", "alice", lease_s=lease_s)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_lease_s": 0},
        {"default_lease_s": 90, "max_lease_s": 60},
        {"safety_margin_s": -1},
        {"expire_item_after_s": 30},
        {"poll_s": 0},
    ],
)
def test_config_is_validated(kwargs):
    with pytest.raises(ValueError):
        LockConfig(**kwargs)


# -- waiting -------------------------------------------------------------------------------


def test_waiting_retries_with_jittered_sleeps_until_the_lease_ends(locks, clock):
    locks.acquire("deploy", "alice", lease_s=2)
    lease = locks.acquire("deploy", "bob", wait_s=5)
    assert lease.owner == "bob"
    assert clock.sleeps, "it slept between attempts"
    assert clock.now >= T0 + 2
    assert clock.now <= T0 + 2 + locks.config.jitter_s + 1e-9  # woke within the jitter of the lease end
    assert all(s <= locks.config.poll_s + locks.config.jitter_s for s in clock.sleeps)


def test_waiting_gives_up_after_wait_s(locks, clock):
    locks.acquire("deploy", "alice", lease_s=30)
    with pytest.raises(LockHeld) as refused:
        locks.acquire("deploy", "bob", wait_s=3)
    assert clock.now == pytest.approx(T0 + 3)  # the last sleep was cut to the deadline
    assert refused.value.retry_after_s == pytest.approx(27)


def test_waiting_sees_an_early_release(store, clock):
    holder = LockManager(store, LockConfig(), clock)
    lease = holder.acquire("deploy", "alice", lease_s=30)

    def sleep_and_release(seconds: float) -> None:
        clock.sleep(seconds)
        record = holder.current("deploy")
        if record is not None and record.held_at(clock()):
            holder.release(lease)

    waiter = LockManager(store, LockConfig(), clock, sleep=sleep_and_release, rng=random.Random(7))
    assert waiter.acquire("deploy", "bob", wait_s=10).owner == "bob"
    assert clock.now < T0 + 1  # one poll, not the 30 s lease


def test_waiting_stops_when_the_invocation_runs_out_and_reports_the_holder(locks, clock):
    locks.acquire("deploy", "alice", lease_s=30)
    with pytest.raises(LockHeld) as refused:
        locks.acquire("deploy", "bob", remaining_s=lambda: T0 + 3 - clock(), wait_s=20)
    assert refused.value.holder == "alice"
    assert T0 + 2 <= clock.now < T0 + 3  # stopped once no lease could fit before the 1 s margin


def test_no_wait_means_no_sleep(locks, clock):
    locks.acquire("deploy", "alice")
    with pytest.raises(LockHeld):
        locks.acquire("deploy", "bob")
    assert clock.sleeps == []


# -- heartbeat ------------------------------------------------------------------------------


def test_heartbeat_extends_the_lease(locks, clock):
    lease = locks.acquire("deploy", "alice", lease_s=10)
    clock.advance(8)
    extended = locks.heartbeat(lease, 10)
    assert extended == Lease("deploy", "alice", lease.fence, T0 + 18)
    clock.advance(5)  # past the first lease end, within the extension
    with pytest.raises(LockHeld) as refused:
        locks.acquire("deploy", "bob")
    assert refused.value.retry_after_s == pytest.approx(5)


def test_heartbeat_is_capped_by_remaining_time(locks):
    lease = locks.acquire("deploy", "alice")
    assert locks.heartbeat(lease, 30, remaining_s=lambda: 6.0).expires_at == pytest.approx(T0 + 5)
    with pytest.raises(LockError):
        locks.heartbeat(lease, 30, remaining_s=lambda: 0.5)


def test_heartbeat_after_takeover_raises_lock_lost(locks, clock):
    lease = locks.acquire("deploy", "alice", lease_s=5)
    clock.advance(6)
    locks.acquire("deploy", "bob")
    with pytest.raises(LockLost) as lost:
        locks.heartbeat(lease, 10)
    assert (lost.value.owner, lost.value.fence) == ("alice", lease.fence)


def test_heartbeat_of_an_expired_lease_raises_lock_lost_even_without_takeover(locks, clock):
    lease = locks.acquire("deploy", "alice", lease_s=5)
    clock.advance(5)
    with pytest.raises(LockLost):
        locks.heartbeat(lease, 10)


def test_heartbeat_after_release_raises_lock_lost(locks):
    lease = locks.acquire("deploy", "alice")
    locks.release(lease)
    with pytest.raises(LockLost):
        locks.heartbeat(lease, 10)


# -- release ---------------------------------------------------------------------------------


def test_release_by_a_non_owner_is_refused(locks, clock):
    lease = locks.acquire("deploy", "alice")
    with pytest.raises(LockLost):
        locks.release(Lease("deploy", "mallory", lease.fence, lease.expires_at))
    assert locks.current("deploy").held_at(clock())


def test_release_with_a_stale_fence_is_refused(locks, clock):
    old = locks.acquire("deploy", "alice", lease_s=5)
    clock.advance(5)
    new = locks.acquire("deploy", "alice")  # the same owner name again, a new acquisition
    with pytest.raises(LockLost):
        locks.release(old)
    assert locks.current("deploy").held_at(clock())
    locks.release(new)


def test_release_after_takeover_raises_lock_lost(locks, clock):
    lease = locks.acquire("deploy", "alice", lease_s=5)
    clock.advance(5)
    locks.acquire("deploy", "bob")
    with pytest.raises(LockLost):
        locks.release(lease)


def test_release_of_an_unknown_lock_raises_lock_lost(locks):
    with pytest.raises(LockLost):
        locks.release(Lease("never", "alice", 1, T0 + 10))


def test_release_of_an_expired_untaken_lease_and_a_second_release_are_harmless(locks, clock):
    lease = locks.acquire("deploy", "alice", lease_s=5)
    clock.advance(30)
    locks.release(lease)
    locks.release(lease)
    assert locks.acquire("deploy", "bob").fence == lease.fence + 1


# -- LeaseLock -------------------------------------------------------------------------------


def test_lease_lock_as_a_context_manager(store, clock):
    with LeaseLock(store, "deploy", "alice", clock=clock, remaining_s=lambda: 100.0) as lease:
        assert lease.owner == "alice"
        with pytest.raises(LockHeld):
            LeaseLock(store, "deploy", "bob", clock=clock).acquire()
    assert not store.load("deploy").held_at(clock())


def test_lease_lock_heartbeat_and_lost_lease_on_exit(store, clock):
    lock = LeaseLock(store, "deploy", "alice", clock=clock)
    lock.acquire(5)
    clock.advance(4)
    assert lock.heartbeat(5).expires_at == pytest.approx(T0 + 9)
    clock.advance(6)
    LeaseLock(store, "deploy", "bob", clock=clock).acquire()
    with pytest.raises(LockLost):
        lock.release()


def test_lease_lock_exit_does_not_hide_the_blocks_error(store, clock):
    lock = LeaseLock(store, "deploy", "alice", clock=clock)
    with pytest.raises(RuntimeError, match="boom"), lock:
        clock.advance(11)
        LeaseLock(store, "deploy", "bob", clock=clock).acquire()
        raise RuntimeError("boom")


def test_manager_lock_shares_the_manager(locks):
    lock = locks.lock("deploy", "alice")
    assert lock.acquire().fence == FLOOR + 1
    with pytest.raises(LockHeld):
        locks.acquire("deploy", "bob")


# -- the fence across item deletion ------------------------------------------------------------


def test_a_recreated_lock_item_starts_above_every_fence_it_issued(dynamodb, clock):
    """TTL deletes abandoned lock items; a new item must not restart the fence at 1."""
    locks = LockManager(DynamoDBLockStore(dynamodb, TABLE), LockConfig(), clock)
    for _ in range(50):
        last = locks.acquire("deploy", "alice", lease_s=1)
        clock.advance(1)
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "lock#deploy"}})  # what TTL does, lazily
    clock.advance(LockConfig().expire_item_after_s)
    assert locks.acquire("deploy", "bob").fence > last.fence


def test_the_item_carries_a_ttl_well_after_the_lease(dynamodb, clock):
    locks = LockManager(DynamoDBLockStore(dynamodb, TABLE), LockConfig(), clock)
    lease = locks.acquire("deploy", "alice", lease_s=10)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "lock#deploy"}})["Item"]
    assert item["owner"] == {"S": "alice"}
    assert int(item["fence"]["N"]) == lease.fence
    assert float(item["lease_until"]["N"]) == pytest.approx(T0 + 10)
    assert int(item["expires_at"]["N"]) == int(T0) + 10 + 86400


# -- fencing: a paused holder cannot clobber a newer write -----------------------------------


REGISTER_KEY = {"pk": {"S": "register#doc"}}


def register_write(version_read: int, body: str) -> dict[str, Any]:
    """A PATCH-like write of the register: conditional on the version read (or on the item being new)."""
    return {
        "TableName": TABLE,
        "Key": REGISTER_KEY,
        "UpdateExpression": "SET #version = :next, #body = :body",
        "ConditionExpression": "attribute_not_exists(#version) OR #version = :read_version",
        "ExpressionAttributeNames": {"#version": "version", "#body": "body"},
        "ExpressionAttributeValues": {
            ":next": {"N": str(version_read + 1)},
            ":read_version": {"N": str(version_read)},
            ":body": {"S": body},
        },
    }


def read_register(client: Any) -> dict[str, Any]:
    return client.get_item(TableName=TABLE, Key=REGISTER_KEY, ConsistentRead=True)["Item"]


def test_a_paused_holder_cannot_clobber_a_newer_holders_write(dynamodb, clock):
    locks = LockManager(DynamoDBLockStore(dynamodb, TABLE), LockConfig(), clock)

    a = locks.acquire("state#doc", "holder-a", lease_s=5)
    version_a_read = 0  # A reads the register, then "pauses" (GC, frozen Lambda) past its lease
    clock.advance(7)

    b = locks.acquire("state#doc", "holder-b", lease_s=5)
    assert b.fence == a.fence + 1  # fence 1 -> fence 2 (counted from the item's floor)
    dynamodb.update_item(**fenced_update(register_write(0, "from B"), b.fence))
    assert read_register(dynamodb)["fence"] == {"N": str(b.fence)}

    # A wakes up and writes with its old fence: refused. Even with the version it would read
    # now (so the version condition alone would pass), the fence refuses it.
    for version_read in (version_a_read, 1):
        with pytest.raises(ClientError) as refused:
            dynamodb.update_item(**fenced_update(register_write(version_read, "from A"), a.fence))
        assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert read_register(dynamodb)["body"] == {"S": "from B"}

    # B's successive writes with its fence keep passing.
    dynamodb.update_item(**fenced_update(register_write(1, "B again"), b.fence))
    dynamodb.update_item(**fenced_update(register_write(2, "B thrice"), b.fence))
    item = read_register(dynamodb)
    assert item["body"] == {"S": "B thrice"}
    assert item["version"] == {"N": "3"}
    assert item["fence"] == {"N": str(b.fence)}

    # A's lease is gone for every other purpose too.
    with pytest.raises(LockLost):
        locks.heartbeat(a, 5)
    with pytest.raises(LockLost):
        locks.release(a)


def test_fence_condition_is_the_documented_expression():
    assert fence_condition(7) == (
        "(attribute_not_exists(#fence) OR #fence <= :fence_token)",
        {"#fence": "fence"},
        {":fence_token": {"N": "7"}},
    )


def test_fenced_update_merges_into_an_existing_set_clause_and_condition():
    request = register_write(4, "x")
    fenced = fenced_update(request, 9)
    assert fenced["UpdateExpression"] == "SET #fence = :fence_token, #version = :next, #body = :body"
    assert fenced["ConditionExpression"] == (
        "(attribute_not_exists(#version) OR #version = :read_version)"
        " AND (attribute_not_exists(#fence) OR #fence <= :fence_token)"
    )
    assert fenced["ExpressionAttributeNames"] == {"#version": "version", "#body": "body", "#fence": "fence"}
    assert fenced["ExpressionAttributeValues"][":fence_token"] == {"N": "9"}
    assert request == register_write(4, "x")  # the input is left unchanged
    assert fenced["Key"] == request["Key"]


def test_fenced_update_adds_a_set_clause_and_a_condition_when_missing():
    fenced = fenced_update(
        {
            "UpdateExpression": "ADD #n :one REMOVE #old",
            "ExpressionAttributeNames": {"#n": "n", "#old": "old", "#fence": "fencing"},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":fence_token": {"S": "taken"}},
        },
        3,
    )
    assert fenced["UpdateExpression"] == "ADD #n :one REMOVE #old SET #fence_1 = :fence_token_1"
    assert fenced["ConditionExpression"] == "(attribute_not_exists(#fence_1) OR #fence_1 <= :fence_token_1)"
    assert fenced["ExpressionAttributeNames"]["#fence"] == "fencing"  # the caller's placeholder is kept
    assert fenced["ExpressionAttributeNames"]["#fence_1"] == "fence"
    assert fenced["ExpressionAttributeValues"][":fence_token_1"] == {"N": "3"}


def test_fenced_update_finds_a_lowercase_set_clause_but_not_a_placeholder_named_set():
    fenced = fenced_update(
        {"UpdateExpression": "remove #set set #a = :set", "ExpressionAttributeNames": {"#set": "x", "#a": "a"}}, 1
    )
    assert fenced["UpdateExpression"] == "remove #set set #fence = :fence_token, #a = :set"


@pytest.mark.parametrize(
    "request_",
    [
        {"UpdateExpression": ""},
        {"ConditionExpression": "attribute_exists(pk)"},
        {"UpdateExpression": "SET #f = :v", "ExpressionAttributeNames": {"#f": "fence"}},
        {"UpdateExpression": "SET fence = :v"},
        {"UpdateExpression": "SET #a = :v", "ConditionExpression": "fence > :x"},
    ],
)
def test_fenced_update_refuses_requests_it_cannot_guard(request_):
    with pytest.raises(ValueError):
        fenced_update(request_, 1)


@pytest.mark.parametrize("token", [-1, True, 1.5, "3"])
def test_fence_tokens_are_non_negative_integers(token):
    with pytest.raises(ValueError):
        fence_condition(token)


def test_a_fenced_write_to_a_new_item_passes_and_records_the_fence(dynamodb):
    dynamodb.update_item(**fenced_update(register_write(0, "first"), 42))
    assert read_register(dynamodb)["fence"] == {"N": "42"}


# -- concurrency ---------------------------------------------------------------------------------


def race(store: LockStore, threads: int = 8) -> tuple[list[Lease], list[LockHeld]]:
    """`threads` owners acquire the same free lock at the same instant (one shared, frozen clock)."""
    barrier = threading.Barrier(threads)
    won: list[Lease] = []
    lost: list[LockHeld] = []
    errors: list[BaseException] = []

    def contender(i: int) -> None:
        locks = LockManager(store, LockConfig(), lambda: T0)
        barrier.wait()
        try:
            won.append(locks.acquire("deploy", f"owner-{i}"))
        except LockHeld as held:
            lost.append(held)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=contender, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not errors, errors
    return won, lost


@pytest.mark.parametrize("adapter", ["memory", "dynamodb"])
def test_eight_threads_racing_for_a_free_lock_exactly_one_wins(adapter, request):
    if adapter == "memory":
        store: LockStore = InMemoryLockStore()
    else:
        store = DynamoDBLockStore(SerializedClient(request.getfixturevalue("dynamodb")), TABLE)
    won, lost = race(store)
    assert len(won) == 1
    assert len(lost) == 7
    assert {held.holder for held in lost} == {won[0].owner}
    assert all(held.retry_after_s == pytest.approx(10) for held in lost)
    assert won[0].fence == FLOOR + 1


# -- DynamoDB call pattern -----------------------------------------------------------------------


def test_each_operation_is_one_update_item(dynamodb, clock):
    log = CallLog(dynamodb)
    locks = LockManager(DynamoDBLockStore(dynamodb, TABLE), LockConfig(), clock)

    lease = locks.acquire("deploy", "alice")
    assert log.take() == ["UpdateItem"]
    with pytest.raises(LockHeld):
        locks.acquire("deploy", "bob")  # the refusal carries the holder: no extra read
    assert log.take() == ["UpdateItem"]
    lease = locks.heartbeat(lease, 10)
    assert log.take() == ["UpdateItem"]
    locks.release(lease)
    assert log.take() == ["UpdateItem"]
    clock.advance(1)
    with pytest.raises(LockLost):
        locks.heartbeat(lease, 10)
    assert log.take() == ["UpdateItem"]
    with pytest.raises(LockError):
        locks.acquire("deploy", "bob", remaining_s=lambda: 0.5)
    assert log.take() == []  # no time left: refused before any call


def test_waiting_costs_one_update_item_per_attempt(dynamodb, clock):
    log = CallLog(dynamodb)
    locks = LockManager(DynamoDBLockStore(dynamodb, TABLE), LockConfig(), clock, sleep=clock.sleep)
    locks.acquire("deploy", "alice", lease_s=1.2)
    log.take()
    locks.acquire("deploy", "bob", wait_s=5)
    assert log.take() == ["UpdateItem"] * (len(clock.sleeps) + 1)


def test_the_stored_expressions(dynamodb, clock):
    """The exact expressions sent, as documented in the store module."""
    sent: list[dict[str, Any]] = []
    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", lambda params, **_: sent.append(params))
    locks = LockManager(DynamoDBLockStore(dynamodb, TABLE), LockConfig(), clock)
    lease = locks.acquire("deploy", "alice")
    locks.heartbeat(lease, 5)
    locks.release(lease)
    assert [(p["UpdateExpression"], p["ConditionExpression"]) for p in sent] == [
        (dynamodb_store.ACQUIRE_UPDATE, dynamodb_store.ACQUIRE_CONDITION),
        (dynamodb_store.EXTEND_UPDATE, dynamodb_store.EXTEND_CONDITION),
        (dynamodb_store.RELEASE_UPDATE, dynamodb_store.RELEASE_CONDITION),
    ]
    assert all(p["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD" for p in sent)
    assert sent[0]["Key"] == {"pk": {"S": "lock#deploy"}}


def test_other_client_errors_propagate(dynamodb, clock):
    locks = LockManager(DynamoDBLockStore(dynamodb, "no-such-table"), LockConfig(), clock)
    with pytest.raises(ClientError) as error:
        locks.acquire("deploy", "alice")
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
