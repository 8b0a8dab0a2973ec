"""GistSync against the loopback Gist server: shard gists, one write per gist, budget, lost answers, read-back,
write-through, and format-1 gists."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest

from cmdgate.crypto import codec_for
from cmdgate.gist import GistClient
from cmdgate.locks import DynamoDBLockStore, LockManager
from cmdgate.ratelimit import InMemoryRateLimitStore, RateLimitPolicy, TokenBucket
from cmdgate.state import layout
from cmdgate.state.layout import FileNamer
from cmdgate.state.model import digest_of
from cmdgate.state.service import Preconditions, StateService
from cmdgate.state.shards import ShardDirectory
from cmdgate.state.store import StateStore
from cmdgate.state.sync import (
    STATE_FILE,
    GistBudgetExhausted,
    GistContentMismatch,
    GistSync,
    GistSyncPending,
    GistSyncUnscheduled,
    GistWriteBudget,
    SyncDeferred,
    WriteThroughSync,
)
from cmdgate_local.gist_server import GistServer

START = 1_800_000_000.0


class FakeTime:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def schedule(self, key: str, version: int) -> None:
        self.calls.append((key, version))


@dataclass
class Env:
    server: GistServer
    time: FakeTime
    token: str
    http: httpx.Client
    store: StateStore
    gist: GistClient
    client: Any

    def sync(
        self,
        budget: GistWriteBudget | None = None,
        *,
        keys_per_gist: int = 50,
        request_bytes: int = 4_000_000,
        gist: Any = None,
        locks: LockManager | None = None,
        linger_s: float = 0.0,
    ) -> GistSync:
        return GistSync(
            self.store,
            gist or self.gist,
            codec_for("plaintext"),
            budget,
            locks,
            shards=ShardDirectory(self.client, "unit-StateTable", keys_per_gist=keys_per_gist),
            namer=lambda: FileNamer(None),
            stack_id="unit-stack",
            plaintext=True,
            request_bytes=request_bytes,
            linger_s=linger_s,
            clock=self.time,
        )

    def write(self, key: str, value: Any) -> int:
        read = self.store.register(key)
        return self.store.commit(key, read, json.dumps(value), digest_of(value)).version

    def gist_requests(self) -> int:
        stats: dict[str, Any] = self.server.app.stats()
        return int(stats["requests_total"])

    def gist_writes(self) -> list[dict[str, Any]]:
        return list(self.server.app.write_log())

    def document(self, key: str) -> dict[str, Any]:
        """The key's file, as the gist its register names holds it now."""
        register = self.store.register(key)
        assert register is not None and register.gist_id is not None
        gist = self.gist.get_gist(register.gist_id)
        return dict(json.loads(self.gist.read_file(gist, register.gist_file or STATE_FILE)))

    def patch_gist(self, gist_id: str, filename: str, content: str) -> None:
        """Change the gist behind cmdgate's back, through the server's own API."""
        response = self.http.patch(
            f"{self.server.url}/gists/{gist_id}",
            json={"files": {filename: {"content": content}}},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text


@pytest.fixture
def env(table_like: Any) -> Iterator[Env]:
    table_like("StateTable")
    client = boto3.client("dynamodb", region_name="us-east-1")
    fake = FakeTime()
    token = f"ghp_test_{uuid.uuid4().hex}"
    server = GistServer(port=0, clock=fake, valid_tokens=[token]).start()
    http = httpx.Client()
    gist = GistClient(http, lambda: token, base_url=server.url, clock=fake, wall_clock=fake, sleep=fake.sleep)
    store = StateStore(client, "unit-StateTable", clock=fake)
    try:
        yield Env(server, fake, token, http, store, gist, client)
    finally:
        http.close()
        server.stop()


def value_of(env: Env, key: str) -> Any:
    document = env.document(key)
    return layout.decode(codec_for("plaintext"), key, json.dumps(document)).value


def test_first_sync_creates_a_shard_gist_with_its_manifest_then_updates_it(env: Env) -> None:
    sync = env.sync()
    env.write("deploy.web", {"n": 1})
    outcome = sync.sync("deploy.web")
    register = env.store.register("deploy.web")
    assert register is not None and register.gist_id is not None
    assert (register.shard, register.gist_file) == ("deploy/0", "deploy.web.json")
    assert (outcome.written_version, register.synced_version, register.revision_sha) == (1, 1, outcome.revision)
    assert register.dirty_at is None  # synced: out of the dirty index
    gist = env.gist.get_gist(register.gist_id)
    assert gist.description == "cmdgate state (format 2) · stack unit-stack · namespace deploy · shard 0"
    manifest = json.loads(env.gist.read_file(gist, layout.MANIFEST_FILE))
    assert (manifest["stack"], manifest["namespace"], manifest["shard"], manifest["format"]) == (
        "unit-stack",
        "deploy",
        0,
        2,
    )
    document = env.document("deploy.web")
    assert (document["key"], document["version"], document["digest"]) == ("deploy.web", 1, digest_of({"n": 1}))
    assert value_of(env, "deploy.web") == {"n": 1}
    kept = env.store.version("deploy.web", 1)
    assert kept is not None and kept.revision == outcome.revision

    env.write("deploy.web", {"n": 2})
    second = sync.sync("deploy.web")
    again = env.store.register("deploy.web")
    assert again is not None and again.gist_id == register.gist_id  # same gist, not a new one
    assert (second.written_version, again.synced_version) == (2, 2)
    assert env.document("deploy.web")["version"] == 2
    assert len(env.gist.list_commits(register.gist_id)) == 2


def test_one_write_carries_every_dirty_key_of_a_gist_and_namespaces_get_their_own(env: Env) -> None:
    sync = env.sync(keys_per_gist=4)
    keys = [f"app.k{n}" for n in range(10)] + ["db:main", "plain"]
    for n, key in enumerate(keys):
        env.write(key, {"n": n})
    outcome = sync.sync("app.k0", max_gists=10)
    # app: 10 keys in shards of 4 -> 3 gists, one create each; db and plain are other namespaces' turn.
    assert outcome.gist_writes == 3 and outcome.files_written == 10
    registers = env.store.registers(keys)
    assert {registers[f"app.k{n}"].shard for n in range(10)} == {"app/0", "app/1", "app/2"}
    assert all(registers[f"app.k{n}"].synced_version == 1 for n in range(10))
    assert registers["db:main"].synced_version == 0 and registers["plain"].synced_version == 0
    for n in range(10):
        assert value_of(env, f"app.k{n}") == {"n": n}
    sync.sync("db:main")
    sync.sync("plain")
    registers = env.store.registers(keys)
    assert (registers["db:main"].shard, registers["plain"].shard) == ("db/0", "_default/0")
    assert len({r.gist_id for r in registers.values()}) == 5
    assert len(env.gist_writes()) == 5


def test_a_gist_lingers_until_its_oldest_unsynced_write_is_old_enough(env: Env) -> None:
    sync = env.sync(linger_s=10)
    env.write("burst.a", 1)
    env.time.now += 4
    env.write("burst.b", 1)
    for key, wait in (("burst.a", 6), ("burst.b", 10)):  # each message comes back when its key is due
        with pytest.raises(SyncDeferred) as deferred:
            sync.sync(key)
        assert deferred.value.wait_s == pytest.approx(wait)
    assert env.gist_writes() == []
    env.time.now += 6
    env.write("burst.c", 1)  # a write just before the gist is due still rides along
    outcome = sync.sync("burst.a")  # due: its gist is written with every dirty key in it
    assert (outcome.gist_writes, outcome.files_written) == (1, 3)
    assert sync.sync("burst.b").written_version is None  # already carried: nothing to do
    env.write("burst.a", 2)
    written = env.sync(linger_s=10).sync("burst.a", now=True)  # write-through does not linger
    assert written.written_version == 2


def test_sync_coalesces_and_a_synced_key_costs_no_gist_call(env: Env) -> None:
    sync = env.sync()
    for n in range(1, 4):
        env.write("k", {"n": n})
    outcome = sync.sync("k")
    assert outcome.written_version == 3
    register = env.store.register("k")
    assert register is not None and register.gist_id is not None
    assert len(env.gist.list_commits(register.gist_id)) == 1  # versions 1 and 2 were never written
    assert env.document("k")["version"] == 3

    before = env.gist_requests()
    again = sync.sync("k")
    unknown = sync.sync("never-written")
    assert (again.written_version, unknown.written_version) == (None, None)
    assert env.gist_requests() == before


def test_a_request_is_split_only_to_stay_under_the_body_limit(env: Env) -> None:
    sync = env.sync(request_bytes=3000)
    for n in range(4):
        env.write(f"big.k{n}", "x" * 900)
    outcome = sync.sync("big.k0")
    assert outcome.files_written == 4 and outcome.gist_writes == 2  # ~1.1 kB a file: two per request
    registers = env.store.registers([f"big.k{n}" for n in range(4)])
    assert len({r.gist_id for r in registers.values()}) == 1  # one gist, two revisions
    assert all(value_of(env, f"big.k{n}") == "x" * 900 for n in range(4))


def test_a_deleted_key_leaves_a_tombstone_not_an_absent_file(env: Env) -> None:
    sync = env.sync()
    env.write("t.k", {"a": 1})
    sync.sync("t.k")
    read = env.store.register("t.k")
    env.store.commit("t.k", read, "null", digest_of(None), deleted=True)
    sync.sync("t.k")
    document = env.document("t.k")
    assert (document["version"], document["deleted"]) == (2, True)
    decoded = layout.decode(codec_for("plaintext"), "t.k", json.dumps(document))
    assert (decoded.version, decoded.deleted) == (2, True)


def test_an_exhausted_budget_refuses_before_writing_and_says_when(env: Env) -> None:
    bucket = TokenBucket(InMemoryRateLimitStore(), clock=env.time)
    budget = GistWriteBudget(bucket, "tok", (RateLimitPolicy(10, 60), RateLimitPolicy(1, 3600)))
    sync = env.sync(budget)
    env.write("k", 1)
    sync.sync("k")
    env.write("k", 2)
    before = env.gist_requests()
    with pytest.raises(GistBudgetExhausted) as refused:
        sync.sync("k")
    assert refused.value.status == 503
    retry_after = int(refused.value.headers["Retry-After"])
    assert 3000 < retry_after <= 3600  # the hourly window is the one that refused
    assert env.gist_requests() == before
    register = env.store.register("k")
    assert register is not None and register.synced_version == 1  # not marked


def test_a_write_reports_how_old_its_oldest_write_was_and_the_budget_left(env: Env) -> None:
    bucket = TokenBucket(InMemoryRateLimitStore(), clock=env.time)
    budget = GistWriteBudget(bucket, "tok", (RateLimitPolicy(10, 60), RateLimitPolicy(5, 3600)))
    sync = env.sync(budget, linger_s=10)
    env.write("lag.a", 1)
    env.time.now += 4
    env.write("lag.b", 1)
    env.time.now += 8
    outcome = sync.sync("lag.a")  # due by lag.a's write, 12 s old; lag.b rides along
    assert (outcome.gist_writes, outcome.files_written) == (1, 2) and outcome.lag_s == pytest.approx(12)
    assert outcome.budget_left == 4  # the hourly window is the tighter one
    idle = sync.sync("lag.b")  # already carried: nothing written, no lag to report
    assert (idle.written_version, idle.lag_s) == (None, None)


def test_a_refusal_by_one_limit_spends_nothing_of_the_others() -> None:
    now = [1_700_000_000.0]
    bucket = TokenBucket(InMemoryRateLimitStore(), clock=lambda: now[0])
    budget = GistWriteBudget(bucket, "tok", (RateLimitPolicy(2, 60), RateLimitPolicy(1, 3600)))
    budget.take()
    for _ in range(5):  # hourly budget spent: every try is refused, and none takes a per-minute write
        with pytest.raises(GistBudgetExhausted):
            budget.take()
    minute = bucket.take_all("gist:tok", "writes", [("60s", RateLimitPolicy(2, 60))]).decisions[0]
    assert minute.allowed  # the one write taken before the refusals left one of two


def test_find_version_reads_a_key_back_across_shard_revisions_and_detects_tampering(env: Env) -> None:
    sync = env.sync()
    for n, value in enumerate(("first", {"second": [1, 2]}, "third")):
        env.write("h.k", value)
        env.write(f"h.other{n}", n)  # other keys' writes add revisions of the same shard
        sync.sync("h.k")
    register = env.store.register("h.k")
    assert register is not None and register.gist_id is not None
    assert sync.find_version(register, 2) == ({"second": [1, 2]}, False)
    assert sync.find_version(register, 1) == ("first", False)
    assert sync.find_version(register, 9) is None
    assert sync.find_version(register, 1, max_revisions=2) is None  # beyond the revisions read
    assert sync.find_version(register, 1, max_bytes=500) is None  # beyond the bytes read

    # A new revision claiming version 2 while its sealed content says version 3.
    forged = env.document("h.k")
    forged["version"] = 2
    env.patch_gist(register.gist_id, "h.k.json", json.dumps(forged, indent=2, sort_keys=True))
    with pytest.raises(GistContentMismatch):
        sync.find_version(register, 2)


def test_a_lost_answer_is_read_back_and_the_write_not_sent_twice(env: Env) -> None:
    sync = env.sync()
    env.write("l.k", 1)
    sync.sync("l.k")
    env.write("l.k", 2)
    env.server.app.set_fault("lost", count=1, methods=frozenset({"PATCH"}))
    outcome = sync.sync("l.k")
    assert outcome.written_version == 2
    register = env.store.register("l.k")
    assert register is not None and register.gist_id is not None and register.synced_version == 2
    assert [w["method"] for w in env.gist_writes()] == ["POST", "PATCH"]  # not resent
    assert register.revision_sha == env.gist.list_commits(register.gist_id)[0].version


def test_a_lost_create_is_found_again_not_created_twice(env: Env) -> None:
    sync = env.sync()
    env.write("c.k", {"v": 1})
    env.server.app.set_fault("lost", count=1, methods=frozenset({"POST"}))
    outcome = sync.sync("c.k")
    assert outcome.written_version == 1
    assert [w["method"] for w in env.gist_writes()] == ["POST"]  # the landed create was adopted
    assert value_of(env, "c.k") == {"v": 1}


def test_a_format_1_gist_is_still_written_and_read_back(env: Env) -> None:
    env.write("old", {"v": 1})
    legacy = layout.encode_legacy(
        codec_for("plaintext"), "old", 1, '{"v":1}', deleted=False, updated_at="t", digest=digest_of({"v": 1})
    )
    gist = env.gist.create_gist({STATE_FILE: legacy}, "cmdgate state: old")
    env.store.mark_synced("old", 1, gist.id, gist.version or "")
    sync = env.sync()
    env.write("old", {"v": 2})
    outcome = sync.sync("old")
    register = env.store.register("old")
    assert register is not None
    assert (outcome.written_version, register.gist_id, register.shard) == (2, gist.id, None)
    document = env.document("old")
    assert (document["key"], document["version"]) == ("old", 2)
    assert sync.find_version(register, 1) == ({"v": 1}, False)
    assert sync.find_version(register, 2) == ({"v": 2}, False)


def test_write_through_syncs_now_or_queues_and_reports_pending(env: Env) -> None:
    fallback = Recorder()
    sync = env.sync()
    write_through = WriteThroughSync(lambda: sync, fallback)
    env.write("k", 1)
    write_through.schedule("k", 1)
    register = env.store.register("k")
    assert register is not None and register.synced_version == 1 and fallback.calls == []

    bucket = TokenBucket(InMemoryRateLimitStore(), clock=env.time)
    starved = env.sync(GistWriteBudget(bucket, "tok", (RateLimitPolicy(1, 600),)))
    env.write("k2", 0)
    starved.sync("k2")  # spends the only write
    failing = WriteThroughSync(lambda: starved, fallback)
    env.write("k", 2)
    with pytest.raises(GistSyncPending) as pending:
        failing.schedule("k", 2)
    assert pending.value.status == 503
    assert pending.value.headers["State-Version"] == "2"
    assert 0 < int(pending.value.headers["Retry-After"]) <= 600  # the budget's wait, passed on
    assert fallback.calls == [("k", 2)]


def test_a_write_through_service_commits_and_surfaces_the_pending_sync(env: Env, table_like: Any) -> None:
    fallback = Recorder()
    env.server.app.set_fault("502", count=None)
    service = StateService(env.store, WriteThroughSync(env.sync, fallback))
    with pytest.raises(GistSyncPending):
        service.put("k", {"a": 1}, Preconditions(if_none_match_any=True))
    assert service.get("k").value == {"a": 1}
    assert fallback.calls == [("k", 1)]


class BrokenQueue:
    def schedule(self, key: str, version: int) -> None:
        raise ConnectionError("sqs unreachable")


def test_a_write_through_with_no_gist_and_no_queue_is_503_unscheduled_not_200(env: Env) -> None:
    env.server.app.set_fault("502", count=None)
    service = StateService(env.store, WriteThroughSync(env.sync, BrokenQueue()))
    with pytest.raises(GistSyncUnscheduled) as unscheduled:
        service.put("k", {"a": 1}, Preconditions(if_none_match_any=True))
    assert unscheduled.value.status == 503
    assert unscheduled.value.headers["State-Version"] == "1"
    register = service.get("k")
    assert register.value == {"a": 1} and register.synced_version == 0  # committed, and known unsynced


class HeldFirstWrite:
    """The Gist client, with its first update held until the test lets it go (a slow gist write)."""

    def __init__(self, gist: GistClient) -> None:
        self._gist = gist
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        self._writes = 0
        self._lock = threading.Lock()

    def update_files(self, gist_id: str, files: dict[str, str], **options: Any) -> Any:
        with self._lock:
            self._writes += 1
            first = self._writes == 1
        if first:
            self.first_started.set()
            assert self.release_first.wait(10)
        return self._gist.update_files(gist_id, files, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gist, name)


@pytest.mark.parametrize("serial", [True, False], ids=["with-sync-lease", "without"])
def test_two_syncs_of_one_gist_never_move_a_key_back(env: Env, table_like: Any, serial: bool) -> None:
    table_like("ControlTable")
    env.write("k", 1)
    env.sync().sync("k")
    env.write("k", 2)
    held = HeldFirstWrite(env.gist)
    waiting = threading.Event()  # the second sync found the gist's sync lease held

    def wait(seconds: float) -> None:
        waiting.set()
        time.sleep(min(seconds, 0.01))

    locks = LockManager(
        DynamoDBLockStore(boto3.client("dynamodb", region_name="us-east-1"), "unit-ControlTable"), sleep=wait
    )
    sync = env.sync(gist=held, locks=locks if serial else None)
    first = threading.Thread(target=sync.sync, args=("k",))
    first.start()
    assert held.first_started.wait(10)  # the first sync read version 2 and is writing it
    env.write("k", 3)
    second = threading.Thread(target=sync.sync, args=("k",))
    second.start()
    # Either the second sync is held off by the lease, or (without one) it runs to its end.
    while not waiting.is_set() and second.is_alive():
        second.join(0.01)
    held.release_first.set()
    first.join(10)
    second.join(10)
    register = env.store.register("k")
    assert register is not None and register.gist_id is not None
    newest = env.document("k")["version"]
    if serial:
        assert newest == 3 and register.synced_version == 3
    else:
        assert newest == 2  # the race the lease closes: version 3 was written, then 2 over it
