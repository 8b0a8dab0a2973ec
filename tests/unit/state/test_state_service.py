"""StateService: conditional writes, merge patch under a lease, history, restore, and the hand-off to sync."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from cmdgate.errors import DependencyUnavailable, PayloadTooLarge, ProblemError
from cmdgate.locks import DynamoDBLockStore, LockManager
from cmdgate.state.errors import (
    InvalidStateKey,
    PreconditionFailed,
    PreconditionRequired,
    StateContention,
    StateNotFound,
    StateTooLarge,
    VersionNotRetained,
)
from cmdgate.state.model import Register
from cmdgate.state.service import Preconditions, StateService
from cmdgate.state.store import StateStore, lease_name
from tests.unit.aws_helpers import CallLog

NOW = 1_800_000_000.0
CREATE = Preconditions(if_none_match_any=True)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Scheduler:
    def __init__(self, failure: Exception | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failure = failure

    def schedule(self, key: str, version: int) -> None:
        self.calls.append((key, version))
        if self.failure is not None:
            raise self.failure


class Events:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def send(self, message: dict[str, Any]) -> str:
        if self.fail:
            raise RuntimeError("queue down")
        self.sent.append(message)
        return "id"


class Archive:
    """A stand-in for GistSync.find_version."""

    def __init__(self, values: dict[int, Any]) -> None:
        self.values = values
        self.calls: list[tuple[str, str, int]] = []

    def find_version(self, register: Register, version: int) -> Any:
        self.calls.append((register.key, register.gist_id or "", version))
        return (self.values[version], False) if version in self.values else None


class Env:
    def __init__(self, table_like: Any) -> None:
        table_like("StateTable")
        table_like("ControlTable")
        client = boto3.client("dynamodb", region_name="us-east-1")
        self.client = client
        self.clock = Clock()
        self.store = StateStore(
            client, "unit-StateTable", retention_s=3600, lease_table="unit-ControlTable", clock=self.clock
        )
        self.locks = LockManager(DynamoDBLockStore(client, "unit-ControlTable"), clock=self.clock)
        self.scheduler = Scheduler()
        self.events = Events()

    def service(self, **kwargs: Any) -> StateService:
        kwargs.setdefault("max_value_bytes", 64)
        kwargs.setdefault("contention_wait_s", 0.0)  # a lost race is a 409 at once, not a retry
        kwargs.setdefault("clock", self.clock)
        return StateService(self.store, self.scheduler, self.events, **kwargs)


@pytest.fixture
def env(table_like: Any) -> Env:
    return Env(table_like)


def test_put_create_and_replace_follow_their_preconditions(env: Env) -> None:
    svc = env.service()
    with pytest.raises(PreconditionRequired):
        svc.put("k", {"a": 1}, Preconditions())
    with pytest.raises(PreconditionFailed):
        svc.put("k", {"a": 1}, Preconditions(if_match=1))  # replace of a missing key
    with pytest.raises(PreconditionFailed):
        svc.put("k", {"a": 1}, Preconditions(if_match_any=True))
    register, created = svc.put("k", {"a": 1}, CREATE)
    assert (register.version, created, register.value) == (1, True, {"a": 1})
    with pytest.raises(PreconditionFailed):
        svc.put("k", {"a": 2}, CREATE)  # already exists
    with pytest.raises(PreconditionFailed):
        svc.put("k", {"a": 2}, Preconditions(if_match=7))  # wrong version
    register, created = svc.put("k", {"a": 2}, Preconditions(if_match=1))
    assert (register.version, created) == (2, False)
    register, created = svc.put("k", {"a": 3}, Preconditions(if_match_any=True))
    assert (register.version, created) == (3, False)
    assert svc.get("k").value == {"a": 3}
    # Each commit, and only commits, reached the scheduler and the event sink, in order.
    assert env.scheduler.calls == [("k", 1), ("k", 2), ("k", 3)]
    assert [(e["type"], e["key"], e["version"], e["deleted"]) for e in env.events.sent] == [
        ("state.changed", "k", 1, False),
        ("state.changed", "k", 2, False),
        ("state.changed", "k", 3, False),
    ]


def test_invalid_keys_and_oversized_values_are_refused_before_any_write(env: Env) -> None:
    svc = env.service()
    for key in ("", "Upper", "-lead", "a" * 129, "sp ace"):
        with pytest.raises(InvalidStateKey):
            svc.put(key, 1, CREATE)
    with pytest.raises(PayloadTooLarge):
        svc.put("k", "x" * 100, CREATE)
    svc.put("k", {"a": 1}, CREATE)
    with pytest.raises(StateTooLarge):  # the result of a patch is a 422, not a 413
        svc.patch("k", {"b": "x" * 100}, Preconditions())
    assert svc.get("k").version == 1
    assert env.scheduler.calls == [("k", 1)]


def test_patch_merges_under_if_match(env: Env) -> None:
    svc = env.service()
    svc.put("k", {"a": 1, "b": {"c": 2, "d": 3}}, CREATE)
    with pytest.raises(StateNotFound):
        svc.patch("other", {"a": 1}, Preconditions())
    with pytest.raises(PreconditionFailed):
        svc.patch("k", {"a": 2}, Preconditions(if_match=5))
    register = svc.patch("k", {"a": None, "b": {"d": None, "e": 4}}, Preconditions(if_match=1))
    assert (register.version, register.value) == (2, {"b": {"c": 2, "e": 4}})
    register = svc.patch("k", {"z": True}, Preconditions())
    assert register.version == 3 and register.value == {"b": {"c": 2, "e": 4}, "z": True}
    assert env.scheduler.calls[-2:] == [("k", 2), ("k", 3)]


def test_update_change_failure_writes_nothing(env: Env) -> None:
    svc = env.service()

    def boom(_: Any) -> Any:
        raise ValueError("no")

    svc.put("k", 1, CREATE)
    with pytest.raises(ValueError):
        svc.update("k", boom)
    assert svc.update("k", lambda n: n + 1).value == 2
    assert env.scheduler.calls == [("k", 1), ("k", 2)]


def test_delete_history_get_version_and_restore(env: Env) -> None:
    svc = env.service()
    svc.put("k", "v1", CREATE)
    svc.put("k", "v2", Preconditions(if_match=1))
    with pytest.raises(PreconditionRequired):
        svc.delete("k", Preconditions())
    with pytest.raises(PreconditionFailed):
        svc.delete("k", Preconditions(if_match=1))
    deleted = svc.delete("k", Preconditions(if_match=2))
    assert (deleted.version, deleted.deleted) == (3, True)
    assert env.events.sent[-1]["deleted"] is True
    with pytest.raises(StateNotFound):
        svc.get("k")
    with pytest.raises(PreconditionFailed):
        svc.delete("k", Preconditions(if_match_any=True))
    with pytest.raises(VersionNotRetained):
        svc.get_version("k", 3)  # the deletion itself is not a readable version
    entries, _ = svc.history("k", 10, None)
    assert [(e.version, e.deleted) for e in entries] == [(3, True), (2, False), (1, False)]
    page, nxt = svc.history("k", 2, None)
    assert [e.version for e in page] == [3, 2] and nxt is not None
    rest, _ = svc.history("k", 2, nxt)
    assert [e.version for e in rest] == [1]
    with pytest.raises(StateNotFound):
        svc.history("never", 10, None)

    restored = svc.restore("k", 1)
    assert (restored.version, restored.value, restored.deleted) == (4, "v1", False)
    assert svc.get("k").value == "v1"
    # After delete the version keeps growing: a create is version 5, not 1.
    svc.delete("k", Preconditions(if_match=4))
    register, created = svc.put("k", "again", CREATE)
    assert (register.version, created) == (6, True)


def test_get_version_falls_back_to_the_gist_once_the_log_aged_out(env: Env) -> None:
    archive = Archive({1: {"old": True}})
    svc = env.service(archive=lambda: archive)
    svc.put("k", {"old": True}, CREATE)
    svc.put("k", {"new": True}, Preconditions(if_match=1))
    env.clock.now += 7200  # both log entries expire
    with pytest.raises(VersionNotRetained):
        svc.get_version("k", 1)  # no gist attached yet: the archive is not asked
    assert archive.calls == []
    env.store.mark_synced("k", 2, "gist-1", "sha-2")
    entry = svc.get_version("k", 1)
    assert (entry.version, entry.value, entry.deleted) == (1, {"old": True}, False)
    assert archive.calls == [("k", "gist-1", 1)]
    with pytest.raises(VersionNotRetained):
        svc.get_version("k", 9)  # beyond the register: never asked
    assert len(archive.calls) == 1
    assert svc.get_version("k", 2).revision == "sha-2"  # the synced version stays in DynamoDB
    assert svc.restore("k", 1).value == {"old": True}


def test_a_problem_from_the_scheduler_propagates_after_the_commit(env: Env) -> None:
    env.scheduler.failure = DependencyUnavailable("gist behind")
    svc = env.service()
    with pytest.raises(ProblemError):
        svc.put("k", 1, CREATE)
    assert svc.get("k").version == 1  # committed nonetheless
    assert env.scheduler.calls == [("k", 1)]


def test_other_scheduler_and_event_failures_do_not_fail_the_write(env: Env) -> None:
    env.scheduler.failure = RuntimeError("sqs down")
    env.events.fail = True
    svc = env.service()
    register, _ = svc.put("k", 1, CREATE)
    assert register.version == 1
    assert env.scheduler.calls == [("k", 1)]  # still tried, after the failed event


def test_ensure_creates_once_and_never_overwrites(env: Env) -> None:
    svc = env.service()
    svc.ensure("k", {"n": 0})
    svc.ensure("k", {"n": 99})
    register = svc.get("k")
    assert (register.version, register.value) == (1, {"n": 0})
    assert env.scheduler.calls == [("k", 1)]


def test_a_lease_holder_excludes_every_other_writer_until_its_lease_ends(env: Env) -> None:
    svc = env.service()
    svc.put("k", {"a": 1}, CREATE)
    lease = env.locks.acquire(lease_name("k"), "holder", lease_s=30)
    with pytest.raises(StateContention) as refused:
        svc.patch("k", {"a": 2}, Preconditions())
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 30
    with pytest.raises(StateContention):
        svc.put("k", {"a": 3}, Preconditions(if_match=1))
    assert svc.get("k").value == {"a": 1}
    env.locks.release(lease)
    assert svc.patch("k", {"a": 2}, Preconditions()).version == 2


def test_a_lost_race_is_retried_after_a_jittered_pause_and_then_refused(env: Env) -> None:
    pauses: list[float] = []
    svc = env.service(contention_wait_s=5.0, sleep=pauses.append, rand=lambda: 0.5)
    svc.put("k", 0, CREATE)
    racer = env.service()
    won: list[int] = []

    def change(current: Any) -> Any:
        if len(won) < 2:  # another writer commits between our read and our commit, twice
            won.append(racer.update("k", lambda n: n + 100).version)
        return current + 1

    register = svc.update("k", change)
    assert won == [2, 3]
    assert (register.version, register.value) == (4, 201)  # re-read each time: nothing lost
    assert pauses == [0.01, 0.02]  # full jitter: rand * min(cap, base * 2**n)

    def always_late(current: Any) -> Any:
        racer.update("k", lambda n: n + 1)
        return current

    with pytest.raises(StateContention):
        env.service(contention_wait_s=0.0).update("k", always_late)


def test_an_uncontended_patch_is_one_read_and_one_transaction(env: Env) -> None:
    svc = env.service()
    svc.put("k", {"a": 1}, CREATE)
    call_log = CallLog(env.client)
    svc.patch("k", {"b": 2}, Preconditions())
    assert call_log.take() == ["GetItem", "TransactWriteItems"]


def test_a_lost_race_retries_from_the_register_the_refusal_returned_without_a_read(env: Env) -> None:
    svc = env.service(contention_wait_s=5.0, sleep=lambda _: None)
    svc.put("k", 0, CREATE)
    racer = env.service()
    raced: list[int] = []

    def change(current: Any) -> Any:
        if not raced:  # one other writer commits between our read and our commit
            raced.append(racer.update("k", lambda n: n + 100).version)
        return current + 1

    call_log = CallLog(env.client)
    register = svc.update("k", change)
    assert (register.version, register.value) == (3, 101)
    # Our read, the racer's read and commit, our lost commit, then the retry straight from what it returned.
    assert call_log.take() == ["GetItem", "GetItem", "TransactWriteItems", "TransactWriteItems", "TransactWriteItems"]


def test_a_change_keyed_by_an_effect_id_is_applied_once_however_often_it_is_attempted(env: Env) -> None:
    svc = env.service()
    svc.put("c", 0, CREATE)
    first = svc.update("c", lambda n: n + 1, effect="exec-1")
    again = svc.update("c", lambda n: n + 1, effect="exec-1")  # the same execution, attempted again
    assert (first.version, first.value) == (2, 1)
    assert (again.version, again.value) == (2, 1)  # nothing applied twice: the current register
    other = svc.update("c", lambda n: n + 1, effect="exec-2")
    assert other.value == 2
    svc.put("d", {"a": 1}, CREATE)
    patched = svc.patch("d", {"b": 2}, Preconditions(), effect="exec-1")  # the same id on another key applies
    assert patched.value == {"a": 1, "b": 2}
    assert svc.patch("d", {"b": 3}, Preconditions(), effect="exec-1").value == {"a": 1, "b": 2}
