"""GistSync against the loopback Gist server: create, update, coalesce, budget, read-back, write-through."""

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
from cmdgate.state.model import digest_of
from cmdgate.state.service import Preconditions, StateService
from cmdgate.state.store import StateStore
from cmdgate.state.sync import (
    STATE_FILE,
    GistBudgetExhausted,
    GistContentMismatch,
    GistSync,
    GistSyncPending,
    GistSyncUnscheduled,
    GistWriteBudget,
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

    def sync(self, budget: GistWriteBudget | None = None) -> GistSync:
        return GistSync(self.store, self.gist, codec_for("plaintext"), budget)

    def write(self, key: str, value: Any) -> int:
        read = self.store.register(key)
        return self.store.commit(key, read, json.dumps(value), digest_of(value)).version

    def gist_requests(self) -> int:
        stats: dict[str, Any] = self.server.app.stats()
        return int(stats["requests_total"])

    def document(self, gist_id: str) -> dict[str, Any]:
        return dict(json.loads(self.gist.get_gist(gist_id).files[STATE_FILE].content or "null"))

    def patch_gist(self, gist_id: str, content: str) -> None:
        """Change the gist behind cmdgate's back, through the server's own API."""
        response = self.http.patch(
            f"{self.server.url}/gists/{gist_id}",
            json={"files": {STATE_FILE: {"content": content}}},
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
        yield Env(server, fake, token, http, store, gist)
    finally:
        http.close()
        server.stop()


def test_first_sync_creates_the_gist_then_updates_it_and_marks_synced(env: Env) -> None:
    sync = env.sync()
    env.write("k", {"n": 1})
    outcome = sync.sync("k")
    register = env.store.register("k")
    assert register is not None and register.gist_id is not None
    assert (outcome.written_version, register.synced_version, register.revision_sha) == (1, 1, outcome.revision)
    gist_id = register.gist_id
    document = env.document(gist_id)
    assert (document["key"], document["version"], document["digest"]) == ("k", 1, digest_of({"n": 1}))
    assert json.loads(document["value"]["value"]) == {"n": 1}
    kept = env.store.version("k", 1)
    assert kept is not None and kept.revision == outcome.revision

    env.write("k", {"n": 2})
    second = sync.sync("k")
    register = env.store.register("k")
    assert register is not None and register.gist_id == gist_id  # same gist, not a new one
    assert (second.written_version, register.synced_version) == (2, 2)
    assert second.revision != outcome.revision
    assert env.document(gist_id)["version"] == 2
    assert len(env.gist.list_commits(gist_id)) == 2


def test_sync_coalesces_and_a_synced_key_costs_no_gist_call(env: Env) -> None:
    sync = env.sync()
    for n in range(1, 4):
        env.write("k", {"n": n})
    outcome = sync.sync("k")
    assert outcome.written_version == 3
    register = env.store.register("k")
    assert register is not None and register.gist_id is not None
    commits = env.gist.list_commits(register.gist_id)
    assert len(commits) == 1  # versions 1 and 2 were never written
    assert env.document(register.gist_id)["version"] == 3

    before = env.gist_requests()
    again = sync.sync("k")
    unknown = sync.sync("never-written")
    assert (again.written_version, unknown.written_version) == (None, None)
    assert env.gist_requests() == before


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


def test_find_version_reads_past_versions_back_and_detects_tampering(env: Env) -> None:
    sync = env.sync()
    for value in ("first", {"second": [1, 2]}, "third"):
        env.write("k", value)
        sync.sync("k")
    register = env.store.register("k")
    assert register is not None and register.gist_id is not None
    gist_id = register.gist_id
    assert sync.find_version("k", gist_id, 2) == ({"second": [1, 2]}, False)
    assert sync.find_version("k", gist_id, 1) == ("first", False)
    assert sync.find_version("k", gist_id, 9) is None
    assert sync.find_version("k", gist_id, 1, max_revisions=2) is None  # beyond the revisions read

    # A new revision claiming version 2 with another value but version 2's digest.
    forged = env.document(gist_id)
    forged.update(version=2, digest=digest_of({"second": [1, 2]}))
    forged["value"] = codec_for("plaintext").encrypt(b'{"second":[6,6]}', {"cmdgate:state-key": "k"})
    env.patch_gist(gist_id, json.dumps(forged, indent=2, sort_keys=True))
    with pytest.raises(GistContentMismatch):
        sync.find_version("k", gist_id, 2)


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

    def update_file(self, gist_id: str, filename: str, content: str) -> Any:
        with self._lock:
            self._writes += 1
            first = self._writes == 1
        if first:
            self.first_started.set()
            assert self.release_first.wait(10)
        return self._gist.update_file(gist_id, filename, content)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gist, name)


@pytest.mark.parametrize("serial", [True, False], ids=["with-sync-lease", "without"])
def test_two_syncs_of_one_key_never_move_its_gist_back(env: Env, table_like: Any, serial: bool) -> None:
    table_like("ControlTable")
    env.write("k", 1)
    env.sync().sync("k")
    env.write("k", 2)
    held = HeldFirstWrite(env.gist)
    waiting = threading.Event()  # the second sync found the key's sync lease held

    def wait(seconds: float) -> None:
        waiting.set()
        time.sleep(min(seconds, 0.01))

    locks = LockManager(
        DynamoDBLockStore(boto3.client("dynamodb", region_name="us-east-1"), "unit-ControlTable"), sleep=wait
    )
    sync = GistSync(env.store, held, codec_for("plaintext"), None, locks if serial else None)  # type: ignore[arg-type]
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
    newest = env.document(register.gist_id)["version"]
    if serial:
        assert newest == 3 and register.synced_version == 3
    else:
        assert newest == 2  # the race the lease closes: version 3 was written, then 2 over it
