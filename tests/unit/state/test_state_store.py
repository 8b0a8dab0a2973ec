"""The state register's guarded writes: versions, fencing, retention, sync bookkeeping."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cmdgate.locks import DynamoDBLockStore, LockManager
from cmdgate.state.merge_patch import apply_merge_patch
from cmdgate.state.model import digest_of
from cmdgate.state.store import StateStore, WriteConflict

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(table_like: Any) -> tuple[StateStore, LockManager, Clock]:
    table_like("StateTable")
    table_like("ControlTable")
    client = boto3.client("dynamodb", region_name="us-east-1")
    clock = Clock()
    store = StateStore(client, "unit-StateTable", retention_s=3600, clock=clock)
    locks = LockManager(DynamoDBLockStore(client, "unit-ControlTable"), clock=clock)
    return store, locks, clock


def write(store: StateStore, key: str, value: Any, fence: int | None = None) -> Any:
    return store.commit(key, store.register(key), json.dumps(value), digest_of(value), fence=fence)


def test_a_paused_holder_cannot_clobber_the_next_holders_write(parts: tuple[StateStore, LockManager, Clock]) -> None:
    store, locks, clock = parts
    write(store, "k", {"n": 0})
    lease_a = locks.acquire("state#k", "holder-a", lease_s=5)
    read_by_a = store.register("k")
    clock.now += 10  # A pauses past its lease (a GC pause, a frozen Lambda)
    lease_b = locks.acquire("state#k", "holder-b", lease_s=5)
    assert lease_b.fence > lease_a.fence
    write(store, "k", {"n": 1}, fence=lease_b.fence)
    # A wakes up; even presenting the version as it is now, its stale fence is refused.
    current = store.register("k")
    assert current is not None and read_by_a is not None
    with pytest.raises(WriteConflict):
        store.commit("k", current, json.dumps({"n": 99}), digest_of({"n": 99}), fence=lease_a.fence)
    # ... and with the version it read, too.
    with pytest.raises(WriteConflict):
        store.commit("k", read_by_a, json.dumps({"n": 99}), digest_of({"n": 99}), fence=lease_a.fence)
    # B's own successive writes pass.
    write(store, "k", {"n": 2}, fence=lease_b.fence)
    write(store, "k", {"n": 3}, fence=lease_b.fence)
    final = store.register("k")
    assert final is not None and final.value == {"n": 3} and final.version == 4


def test_a_stale_read_is_refused_and_nothing_is_half_written(parts: tuple[StateStore, LockManager, Clock]) -> None:
    store, _, _ = parts
    write(store, "k", "v1")
    stale = store.register("k")
    write(store, "k", "v2")
    with pytest.raises(WriteConflict):
        store.commit("k", stale, json.dumps("lost"), digest_of("lost"))
    assert store.version("k", 3) is None  # the log entry of the refused write does not exist
    entries, _ = store.history("k", 10, None)
    assert [e.version for e in entries] == [2, 1]


def test_versions_age_out_unless_they_reached_the_gist(parts: tuple[StateStore, LockManager, Clock]) -> None:
    store, _, clock = parts
    write(store, "k", "v1")
    write(store, "k", "v2")
    store.mark_synced("k", 2, "gist-1", "sha-2")
    clock.now += 7200  # past the retention window
    assert store.version("k", 1) is None
    kept = store.version("k", 2)
    assert kept is not None and kept.revision == "sha-2"
    register = store.register("k")
    assert register is not None and (register.synced_version, register.revision_sha) == (2, "sha-2")
    store.mark_synced("k", 1, "gist-1", "sha-1")  # an older sync never moves synced_version back
    register = store.register("k")
    assert register is not None and register.synced_version == 2


def test_a_sync_landing_after_its_register_is_gone_makes_no_stub_register(
    parts: tuple[StateStore, LockManager, Clock],
) -> None:
    store, _, _ = parts
    store.mark_synced("gone", 3, "gist-1", "sha-3")  # the table lost the key while its gist write was in flight
    store.mark_synced_many({"gone.too": 2}, "gist-1", "sha-2")
    assert store.register("gone") is None and store.register("gone.too") is None
    assert store.registers(["gone", "gone.too"]) == {}


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert apply_merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert apply_merge_patch({"a": [1]}, {"a": [2, 3]}) == {"a": [2, 3]}
    assert apply_merge_patch("text", {"a": 1}) == {"a": 1}
    assert apply_merge_patch({"a": 1}, ["x"]) == ["x"]
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}  # inputs untouched


def test_a_write_makes_the_key_dirty_and_only_its_newest_synced_version_clears_it(
    parts: tuple[StateStore, LockManager, Clock],
) -> None:
    store, _, clock = parts
    write(store, "app.a", 1)
    clock.now += 5
    write(store, "app.b", 1)
    write(store, "app.a", 2)  # still dirty since its first unsynced write
    write(store, "other:c", 1)
    assert store.dirty_keys("app", 10) == ["app.a", "app.b"]  # oldest unsynced write first
    assert store.dirty_keys("other", 10) == ["other:c"]
    a = store.register("app.a")
    assert a is not None and a.dirty_at == NOW

    store.mark_synced("app.a", 1, "gist-1", "sha-1")  # version 2 is newer: app.a stays dirty
    assert store.dirty_keys("app", 10) == ["app.a", "app.b"]
    store.mark_synced("app.a", 2, "gist-1", "sha-2")
    assert store.dirty_keys("app", 10) == ["app.b"]
    store.mark_synced("app.a", 1, "gist-1", "sha-1")  # a late mark never moves synced_version back
    a = store.register("app.a")
    assert a is not None and (a.synced_version, a.revision_sha, a.dirty_at) == (2, "sha-2", None)


def test_registers_are_read_in_batches_and_placing_a_key_is_first_come(
    parts: tuple[StateStore, LockManager, Clock],
) -> None:
    store, _, _ = parts
    keys = [f"n.k{i}" for i in range(130)]  # more than one BatchGetItem
    for key in keys:
        write(store, key, key)
    found = store.registers([*keys, "n.unknown"])
    assert sorted(found) == sorted(keys) and found["n.k129"].value == "n.k129"

    assert store.place("n.k0", "n/0", "n.k0.json") == ("n/0", "n.k0.json", None)
    assert store.place("n.k0", "n/1", "n.k0.json") == ("n/0", "n.k0.json", None)  # the first placement stands
    store.mark_synced("n.k1", 1, "old-gist", "sha")  # a format-1 key: it has a gist and no shard
    assert store.place("n.k1", "n/0", "n.k1.json") == (None, None, "old-gist")
    assert store.place("never", "n/0", "never.json")[0] is None  # no register, no placement


def test_placing_and_marking_many_keys_is_one_transaction_or_falls_back_key_by_key(
    parts: tuple[StateStore, LockManager, Clock],
) -> None:
    store, _, _ = parts
    for key in ("m.a", "m.b", "m.c"):
        write(store, key, 1)
    store.place("m.b", "m/0", "m.b.json")  # placed already: the batch's transaction is cancelled
    stands = store.place_many([("m.a", "m/1", "m.a.json"), ("m.b", "m/1", "m.b.json"), ("m.c", "m/1", "m.c.json")])
    assert stands == {
        "m.a": ("m/1", "m.a.json", None),
        "m.b": ("m/0", "m.b.json", None),  # the first placement stands
        "m.c": ("m/1", "m.c.json", None),
    }
    write(store, "m.c", 2)  # m.c moved on: the batch mark falls back, and m.c stays dirty
    store.mark_synced_many({"m.a": 1, "m.b": 1, "m.c": 1}, "gist-1", "sha-1")
    registers = store.registers(["m.a", "m.b", "m.c"])
    assert [registers[k].synced_version for k in ("m.a", "m.b", "m.c")] == [1, 1, 1]
    assert store.dirty_keys("m", 10) == ["m.c"]
    entry = store.version("m.a", 1)
    assert entry is not None and entry.revision == "sha-1"
    store.mark_synced_many({"m.c": 2}, "gist-1", "sha-2")  # the usual case: one transaction
    assert store.dirty_keys("m", 10) == []


def test_marking_many_keys_when_one_moved_on_marks_the_rest_in_a_second_transaction(
    parts: tuple[StateStore, LockManager, Clock],
) -> None:
    # The steady case of a busy gist: one of its keys was written again while the gist was written.
    store, _, _ = parts
    keys = [f"busy.k{n:02d}" for n in range(20)]
    for key in keys:
        write(store, key, 1)
    write(store, "busy.k07", 2)
    calls: list[str] = []
    store._client.meta.events.register(
        "before-call.dynamodb.*", lambda event_name, **_: calls.append(event_name.rsplit(".", 1)[1])
    )
    store.mark_synced_many(dict.fromkeys(keys, 1), "gist-1", "sha-1")
    # Before: every key one by one after the cancelled transaction (41 calls).
    assert calls == ["TransactWriteItems", "TransactWriteItems", "UpdateItem", "UpdateItem", "UpdateItem"]
    registers = store.registers(keys)
    assert all(registers[k].synced_version == 1 for k in keys)
    assert store.dirty_keys("busy", 50) == ["busy.k07"]  # written again: still dirty
    assert all(store.version(k, 1).revision == "sha-1" for k in keys)  # type: ignore[union-attr]


def test_a_chunk_refused_round_after_round_ends_key_by_key(
    parts: tuple[StateStore, LockManager, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, _ = parts
    keys = [f"race.k{n}" for n in range(4)]
    for key in keys:
        write(store, key, 1)
    rounds: list[int] = []

    def refuse_the_first(entries: list[tuple[str, int]], gist_id: str, sha: str) -> list[tuple[str, int]]:
        rounds.append(len(entries))
        return entries[:1]  # another key moves on in every round

    monkeypatch.setattr(store, "_mark_synced_together", refuse_the_first)
    store.mark_synced_many(dict.fromkeys(keys, 1), "gist-1", "sha-1")
    assert rounds == [4, 3, 2]  # MARK_ROUNDS transactions, each without the keys refused before
    assert store.dirty_keys("race", 10) == []  # the rest marked one by one
