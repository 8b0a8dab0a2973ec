"""StateRecovery against the loopback Gist server and moto: a wiped state table rebuilt from the gists."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest

from cmdgate.crypto import Codec, codec_for
from cmdgate.gist import GistClient
from cmdgate.state import layout
from cmdgate.state.layout import FileNamer
from cmdgate.state.model import digest_of
from cmdgate.state.names import FileNameKey
from cmdgate.state.recovery import StateRecovery
from cmdgate.state.shards import ShardDirectory
from cmdgate.state.store import StateStore
from cmdgate.state.sync import GistSync
from cmdgate_local.gist_server import GistServer

TABLE = "unit-StateTable"
STACK = "unit-stack"


class Ticks:
    """A monotonic clock that moves one second per reading: a budget of n seconds allows a few steps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@dataclass
class Env:
    client: Any
    store: StateStore
    gist: GistClient
    codec: Codec
    server: GistServer
    token: str
    kms: Any
    key_id: str

    def sync(self) -> GistSync:
        names = FileNameKey(self.client, TABLE, self.kms, self.key_id)
        return GistSync(
            self.store,
            self.gist,
            self.codec,
            None,
            shards=ShardDirectory(self.client, TABLE, keys_per_gist=3),
            namer=lambda: FileNamer(names.get()),
            stack_id=STACK,
            plaintext=False,
        )

    def recovery(self, **kwargs: Any) -> StateRecovery:
        return StateRecovery(
            self.client, TABLE, self.gist, self.codec, ShardDirectory(self.client, TABLE), stack_id=STACK, **kwargs
        )

    def write(self, key: str, value: Any, *, deleted: bool = False) -> int:
        read = self.store.register(key)
        text = json.dumps(value, separators=(",", ":"))
        return self.store.commit(key, read, text, digest_of(value), deleted=deleted).version

    def wipe(self) -> int:
        """Delete every item of the state table: registers, logs, shard directory, the name key."""
        items = self.client.scan(TableName=TABLE)["Items"]
        for item in items:
            self.client.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
        return len(items)

    def create_gist(self, description: str, files: dict[str, str]) -> str:
        answer = httpx.post(
            f"{self.server.url}/gists",
            json={"description": description, "public": False, "files": {n: {"content": c} for n, c in files.items()}},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


@pytest.fixture
def env(table_like: Any) -> Iterator[Env]:
    table_like("StateTable")
    client = boto3.client("dynamodb", region_name="us-east-1")
    kms = boto3.client("kms", region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    token = f"ghp_test_{uuid.uuid4().hex}"
    server = GistServer(port=0, valid_tokens=[token], secondary_limit_per_minute=500).start()
    http = httpx.Client()
    gist = GistClient(http, lambda: token, base_url=server.url)
    try:
        yield Env(client, StateStore(client, TABLE), gist, codec_for("kms", kms, key_id), server, token, kms, key_id)
    finally:
        http.close()
        server.stop()


def history(env: Env, key: str) -> list[tuple[int, Any, bool, bool]]:
    entries, _ = env.store.history(key, 100, None)
    return [(e.version, e.value, e.deleted, e.revision is not None) for e in entries]


def test_a_wiped_table_is_rebuilt_from_encrypted_shard_gists_without_the_name_key(env: Env) -> None:
    sync = env.sync()
    for n in range(4):  # 3 keys a gist: two shard gists of namespace `team`
        env.write(f"team.k{n}", {"n": n})
    sync.sync("team.k0", max_gists=10)
    env.write("team.k1", {"n": 11})
    env.write("team.k2", None, deleted=True)
    sync.sync("team.k1", max_gists=10)
    env.write("team.k3", {"n": 33})  # never synced: lost with the table
    before = {k: env.store.register(k) for k in ("team.k0", "team.k1", "team.k2")}

    assert env.wipe() > 0
    report = env.recovery(plaintext=False).run(namespaces=None, gists=None)

    assert report.done, report.view()
    counts = report.counts
    assert (counts["gists_to_recover"], counts["keys_recovered"], counts["tombstones_recovered"]) == (2, 4, 1)
    assert counts["shards_recovered"] == 2 and counts["versions_logged"] == 6
    for key, old in before.items():
        new = env.store.register(key)
        assert old is not None and new is not None
        assert (new.version, new.value_json, new.digest, new.deleted) == (
            old.version,
            old.value_json,
            old.digest,
            old.deleted,
        )
        assert (new.gist_id, new.shard, new.gist_file, new.synced_version) == (
            old.gist_id,
            old.shard,
            old.gist_file,
            old.version,
        )
        assert new.dirty_at is None  # recovered keys are synced, not dirty
    assert history(env, "team.k1") == [(2, {"n": 11}, False, True), (1, {"n": 1}, False, True)]
    assert history(env, "team.k2") == [(2, None, True, True), (1, {"n": 2}, False, True)]
    k3 = env.store.register("team.k3")
    assert k3 is not None and (k3.version, k3.value) == (1, {"n": 3})  # the synced version, the later write lost
    # The log records the revision that carried each version: the oldest one holding it.
    first = env.store.version("team.k1", 1)
    assert first is not None and first.revision == before["team.k0"].revision_sha  # type: ignore[union-attr]

    # A sync after the recovery writes the same gist and file (a new name key names only new keys).
    env.write("team.k1", {"n": 12})
    env.sync().sync("team.k1")
    after = env.store.register("team.k1")
    assert after is not None and after.synced_version == 3 and after.gist_id == before["team.k1"].gist_id  # type: ignore[union-attr]

    env.write("team.k0", {"n": 100})  # written since the recovery, not synced yet
    again = env.recovery(plaintext=False).run(namespaces=None, gists=None)
    assert again.counts.get("keys_recovered", 0) == 0 and again.counts["keys_present"] == 3
    assert again.counts["keys_conflicting"] == 1  # team.k0 moved on since: left as it is
    assert env.store.register("team.k0").value == {"n": 100}  # type: ignore[union-attr]
    assert history(env, "team.k1")[0][:2] == (3, {"n": 12})


def test_other_stacks_and_other_keys_gists_are_left_alone_and_format_1_gists_are_recovered(env: Env) -> None:
    ours = layout.encode_legacy(
        env.codec, "old.key", 4, '{"v":4}', deleted=False, updated_at="t", digest=digest_of({"v": 4})
    )
    legacy = env.create_gist("cmdgate state: old.key", {"state.json": ours})
    other_kms = codec_for("kms", env.kms, env.kms.create_key()["KeyMetadata"]["KeyId"])
    theirs = layout.encode_legacy(
        other_kms, "old.theirs", 1, '{"v":1}', deleted=False, updated_at="t", digest=digest_of({"v": 1})
    )
    env.create_gist("cmdgate state: old.theirs", {"state.json": theirs})
    foreign = layout.ShardRef("team", 0)
    content = layout.encode(
        env.codec, "team.x", 1, '{"x":1}', deleted=False, updated_at="t", digest=digest_of({"x": 1}), plaintext=False
    )
    env.create_gist(
        layout.description("other-stack", foreign),
        {layout.MANIFEST_FILE: layout.manifest("other-stack", foreign), "f.json": content},
    )
    # Our description on a gist whose manifest names another stack: the content decides.
    env.create_gist(
        layout.description(STACK, foreign),
        {layout.MANIFEST_FILE: layout.manifest("other-stack", foreign), "f.json": content},
    )
    for n in range(100):  # a second page of the gist list
        env.create_gist(f"unrelated {n}", {"a.txt": "x"})

    report = env.recovery(plaintext=False).run(namespaces=None, gists=None)

    assert report.done and report.counts["gists_listed"] == 104
    assert report.counts["keys_recovered"] == 1 and report.counts["gists_not_ours"] == 103
    register = env.store.register("old.key")
    assert register is not None and (register.version, register.value, register.gist_id) == (4, {"v": 4}, legacy)
    assert register.shard is None  # format 1: its own gist, still written there
    for key in ("old.theirs", "team.x"):
        assert env.store.register(key) is None


def test_a_recovery_step_stops_within_its_budget_and_resumes_from_next(env: Env) -> None:
    sync = env.sync()
    for n in range(6):
        env.write(f"ns{n}.k", {"n": n})
        sync.sync(f"ns{n}.k")
    env.wipe()
    recovery = env.recovery(plaintext=False, clock=Ticks())
    steps = []
    report = recovery.run(namespaces=frozenset({"ns1", "ns2", "ns3"}), gists=None, budget_s=6)
    steps.append(report)
    while not report.done:
        report = recovery.run(
            namespaces=frozenset({"ns1", "ns2", "ns3"}), gists=report.gists, skip=report.skip, budget_s=6
        )
        steps.append(report)
    assert len(steps) > 1  # bounded: one step did not do it all
    assert sum(s.counts.get("keys_recovered", 0) for s in steps) == 3
    assert [k for k in (f"ns{n}.k" for n in range(6)) if env.store.register(k) is not None] == [
        "ns1.k",
        "ns2.k",
        "ns3.k",
    ]


def test_files_written_before_they_carried_their_key_name_are_counted_not_guessed(env: Env) -> None:
    content = json.loads(
        layout.encode(env.codec, "t.a", 1, "1", deleted=False, updated_at="t", digest=digest_of(1), plaintext=False)
    )
    del content["name"]
    shard = layout.ShardRef("t", 0)
    env.create_gist(
        layout.description(STACK, shard),
        {layout.MANIFEST_FILE: layout.manifest(STACK, shard), "abc.json": json.dumps(content)},
    )
    report = env.recovery(plaintext=False).run(namespaces=None, gists=None)
    assert report.counts["files_unnamed"] >= 1 and report.counts.get("keys_recovered", 0) == 0


def test_a_gist_named_by_the_caller_that_does_not_exist_is_counted_not_an_error(env: Env) -> None:
    report = env.recovery(plaintext=False).run(namespaces=None, gists=["0123abcd", "nothere"])
    assert report.done and report.counts["gists_missing"] == 2
