"""Gist sync against the loopback Gist API: encrypted shard files, revisions, tombstones, format-1 gists, outages."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from cmdgate.crypto import codec_for
from cmdgate.state import layout
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.integration
MERGE = {"Content-Type": "application/merge-patch+json"}


def register(stack: Stack, key: str) -> dict[str, Any]:
    item = stack.aws("dynamodb").get_item(
        TableName=stack.resource("StateTable"),
        Key={"pk": {"S": f"key#{key}"}, "sk": {"S": "register"}},
        ConsistentRead=True,
    )["Item"]
    return item


def synced(stack: Stack, key: str) -> int:
    return int(stack.admin.get(f"/v1/state/{key}").headers["gist-synced-version"])


GITHUB = {"Authorization": "Bearer test"}


def gist_file(stack: Stack, key: str, revision: str | None = None) -> str:
    """The key's file content in the gist its register names (at `revision`, else the newest)."""
    item = register(stack, key)
    gist_id = item["gist_id"]["S"]
    path = f"/gists/{gist_id}/{revision}" if revision else f"/gists/{gist_id}"
    gist = httpx.get(f"{stack.state['gist_url']}{path}", headers=GITHUB).json()
    content: str = gist["files"][item.get("gist_file", {}).get("S", layout.LEGACY_FILE)]["content"]
    return content


def gist_document(stack: Stack, key: str) -> dict[str, Any]:
    return dict(json.loads(gist_file(stack, key)))


def opened(stack: Stack, key: str, revision: str | None = None) -> layout.FileVersion:
    """The key's file, decrypted and checked."""
    codec = codec_for("kms", stack.aws("kms"), stack.resource("StateKey"))
    return layout.decode(codec, key, gist_file(stack, key, revision))


def admin(stack: Stack, path: str, body: dict[str, Any]) -> None:
    httpx.post(f"{stack.state['gist_url']}/_admin/{path}", json=body).raise_for_status()


def test_writes_reach_an_encrypted_gist_and_history_lists_revisions(stack: Stack) -> None:
    key = f"sync.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"secret": "s3cr3t", "n": 1}, headers={"If-None-Match": "*"})
    stack.admin.patch(f"/v1/state/{key}", json={"n": 2}, headers=MERGE)
    wait_for(lambda: synced(stack, key) == 2, timeout_s=30)
    document = gist_document(stack, key)
    assert document["version"] == 2
    assert "s3cr3t" not in json.dumps(document)  # a secret gist is readable by URL: content is encrypted
    assert key not in json.dumps(document)  # and so is the key's name
    assert opened(stack, key).value == {"secret": "s3cr3t", "n": 2}
    history = stack.admin.get(f"/v1/state/{key}/history").json()["versions"]
    assert history[0]["version"] == 2 and history[0]["revision"]


def gist_health(stack: Stack) -> tuple[str, str]:
    """The overall status and the gist check's, as /v1/health reports them."""
    health = stack.client().get("/v1/health").json()
    return health["status"], health["checks"]["gist"]["status"]


def test_health_is_degraded_while_the_gist_api_is_down_and_sync_loses_nothing(stack: Stack) -> None:
    key = f"outage.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"n": 0}, headers={"If-None-Match": "*"})
    wait_for(lambda: synced(stack, key) == 1, timeout_s=30)
    admin(stack, "faults", {"mode": "502", "count": None})
    try:
        for n in range(1, 6):
            response = stack.admin.patch(f"/v1/state/{key}", json={"n": n}, headers=MERGE)
            assert response.status_code == 200  # writes keep succeeding during the outage
        assert stack.admin.get(f"/v1/state/{key}").headers["state-version"] == "6"
        # The sync's failures open the gist breaker: health says so (degraded, never unhealthy).
        wait_for(lambda: gist_health(stack) == ("degraded", "failing"), timeout_s=60, interval_s=0.5)
        assert synced(stack, key) < 6
    finally:
        admin(stack, "faults", {"mode": "none"})
    recovered_at = time.monotonic()
    wait_for(lambda: synced(stack, key) == 6, timeout_s=90, interval_s=0.5)
    wait_for(lambda: gist_health(stack)[1] == "ok", timeout_s=30, interval_s=0.5)
    print(f"backlog drained {time.monotonic() - recovered_at:.1f} s after the gist API recovered")
    assert opened(stack, key).value == {"n": 5}


@pytest.fixture(scope="module")
def write_through_stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.integration.conftest import running_stack

    with running_stack(tmp_path_factory.mktemp("write-through"), ("StateGistMode=write_through",)) as running:
        yield running


def test_write_through_returns_once_the_gist_revision_exists(write_through_stack: Stack) -> None:
    stack, key = write_through_stack, f"strict.{uuid.uuid4().hex[:10]}"
    created = stack.admin.put(f"/v1/state/{key}", json={"n": 1}, headers={"If-None-Match": "*"})
    assert created.status_code == 201
    assert created.headers["gist-synced-version"] == "0"  # headers are from the commit; the gist follows
    assert synced(stack, key) == 1  # but by the time the answer arrived, the revision existed
    admin(stack, "faults", {"mode": "502", "count": None})
    try:
        pending = stack.admin.patch(f"/v1/state/{key}", json={"n": 2}, headers=MERGE)
        assert pending.status_code == 503
        assert pending.json()["code"] == "GIST_SYNC_PENDING"
        assert pending.headers["state-version"] == "2"  # committed, not lost
    finally:
        admin(stack, "faults", {"mode": "none"})
    wait_for(lambda: synced(stack, key) == 2, timeout_s=60, interval_s=0.5)


def test_secondary_rate_limit_with_retry_after_only_delays_sync(stack: Stack) -> None:
    key = f"limited.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"n": 0}, headers={"If-None-Match": "*"})
    wait_for(lambda: synced(stack, key) == 1, timeout_s=30)
    injected_before = httpx.get(f"{stack.state['gist_url']}/_admin/stats").json()["faults_injected"]
    admin(stack, "faults", {"mode": "429", "count": 3, "retry_after": 1})
    try:
        assert stack.admin.patch(f"/v1/state/{key}", json={"n": 1}, headers=MERGE).status_code == 200
        wait_for(lambda: synced(stack, key) == 2, timeout_s=60, interval_s=0.5)
    finally:
        admin(stack, "faults", {"mode": "none"})
    stats = httpx.get(f"{stack.state['gist_url']}/_admin/stats").json()
    assert stats["faults_injected"] - injected_before == 3  # all three 429s were met, and waited out


def test_a_version_gone_from_dynamodb_is_read_back_from_the_gist(stack: Stack) -> None:
    key = f"archive.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"n": 1}, headers={"If-None-Match": "*"})
    wait_for(lambda: synced(stack, key) == 1, timeout_s=30)
    stack.admin.patch(f"/v1/state/{key}", json={"n": 2}, headers=MERGE)
    wait_for(lambda: synced(stack, key) == 2, timeout_s=30)
    stack.aws("dynamodb").delete_item(
        TableName=stack.resource("StateTable"), Key={"pk": {"S": f"key#{key}"}, "sk": {"S": f"v#{1:012d}"}}
    )
    response = stack.admin.get(f"/v1/state/{key}", params={"version": 1})
    assert response.status_code == 200, response.text
    assert response.json() == {"n": 1}
    missing = stack.admin.get(f"/v1/state/{key}", params={"version": 7})
    assert missing.status_code == 404 and missing.json()["code"] == "VERSION_NOT_RETAINED"


def test_a_gist_api_timeout_is_retried_and_sync_completes(stack: Stack) -> None:
    key = f"slow.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"n": 0}, headers={"If-None-Match": "*"})
    wait_for(lambda: synced(stack, key) == 1, timeout_s=30)
    injected_before = httpx.get(f"{stack.state['gist_url']}/_admin/stats").json()["faults_injected"]
    # One answer slower than the client's 10 s read timeout: the client times out and retries.
    admin(stack, "faults", {"mode": "timeout", "count": 1, "delay_s": 12})
    try:
        assert stack.admin.patch(f"/v1/state/{key}", json={"n": 1}, headers=MERGE).status_code == 200
        wait_for(lambda: synced(stack, key) == 2, timeout_s=90, interval_s=0.5)
    finally:
        admin(stack, "faults", {"mode": "none"})
    assert httpx.get(f"{stack.state['gist_url']}/_admin/stats").json()["faults_injected"] - injected_before == 1


def test_concurrent_write_through_writes_make_one_gist_that_never_moves_back(write_through_stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stack, key = write_through_stack, f"race.{uuid.uuid4().hex[:10]}"

    def increment(_: int) -> tuple[int, str]:
        answer = stack.admin.post("/v1/commands/counter.increment", json={"key": key})
        return answer.status_code, answer.json().get("code", "")

    # Eight first writes at once: every one commits; their syncs queue on the key's sync lease.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(increment, range(8)))
    assert all(status == 200 or code == "GIST_SYNC_PENDING" for status, code in answers), answers
    assert stack.admin.get(f"/v1/state/{key}").json() == 8

    def fully_synced() -> dict[str, Any] | None:
        found = register(stack, key)
        return found if int(found.get("synced_version", {"N": "0"})["N"]) == int(found["version"]["N"]) else None

    item = wait_for(fully_synced, timeout_s=60)
    # The key is in one gist only, and that gist's newest revision holds the register's newest version.
    token = stack.aws("secretsmanager").get_secret_value(SecretId="cmdgate-local-github-token")["SecretString"]
    listed = httpx.get(  # the stack's own token: a token lists only its own gists
        f"{stack.state['gist_url']}/gists", params={"per_page": 100}, headers={"Authorization": f"Bearer {token}"}
    ).json()
    holding = [g["id"] for g in listed if item["gist_file"]["S"] in g["files"]]
    assert holding == [item["gist_id"]["S"]]
    newest = opened(stack, key)
    assert (newest.version, newest.value) == (int(item["version"]["N"]), 8)
    commits = httpx.get(f"{stack.state['gist_url']}/gists/{item['gist_id']['S']}/commits", headers=GITHUB).json()
    versions = [layout.version_in(gist_file(stack, key, commit["version"])) for commit in commits]
    assert versions == sorted(versions, reverse=True)  # newest first, and never an older one after a newer


def test_a_deleted_key_leaves_a_tombstone_in_its_gist(stack: Stack) -> None:
    key = f"tomb.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"n": 1}, headers={"If-None-Match": "*"})
    wait_for(lambda: int(register(stack, key).get("synced_version", {"N": "0"})["N"]) == 1, timeout_s=30)
    assert stack.admin.delete(f"/v1/state/{key}", headers={"If-Match": '"1"'}).status_code == 204
    wait_for(lambda: int(register(stack, key).get("synced_version", {"N": "0"})["N"]) == 2, timeout_s=30)
    tombstone = opened(stack, key)
    assert (tombstone.version, tombstone.deleted, tombstone.value) == (2, True, None)


def test_history_and_restore_of_a_key_across_shard_revisions(stack: Stack) -> None:
    ns = f"hist{uuid.uuid4().hex[:8]}"
    key, neighbour = f"{ns}.k", f"{ns}.other"
    stack.admin.put(f"/v1/state/{key}", json={"n": 1}, headers={"If-None-Match": "*"})
    stack.admin.put(f"/v1/state/{neighbour}", json=0, headers={"If-None-Match": "*"})
    for n in (2, 3):
        previous = n - 1

        def caught_up(previous: int = previous) -> bool:
            return synced(stack, key) == previous

        wait_for(caught_up, timeout_s=30)
        stack.admin.patch(f"/v1/state/{key}", json={"n": n}, headers=MERGE)
        stack.admin.patch(f"/v1/state/{neighbour}", json=n, headers=MERGE)  # more revisions of the same gist
    wait_for(lambda: synced(stack, key) == 3, timeout_s=30)
    assert register(stack, key)["gist_id"] == register(stack, neighbour)["gist_id"]  # one shard
    history = stack.admin.get(f"/v1/state/{key}/history").json()["versions"]
    revisions = [entry["revision"] for entry in history]
    assert [entry["version"] for entry in history] == [3, 2, 1] and len(set(revisions)) == 3
    for entry in history:  # each logged revision of the shard holds that version of the key
        assert opened(stack, key, entry["revision"]).version == entry["version"]
    # The log gone, the gist's revisions still give version 1 back; restore writes it as version 4.
    stack.aws("dynamodb").delete_item(
        TableName=stack.resource("StateTable"), Key={"pk": {"S": f"key#{key}"}, "sk": {"S": f"v#{1:012d}"}}
    )
    assert stack.admin.get(f"/v1/state/{key}", params={"version": 1}).json() == {"n": 1}
    restored = stack.admin.post(f"/v1/state/{key}/restore", json={"version": 1})
    assert restored.status_code in (200, 204), restored.text
    wait_for(lambda: synced(stack, key) == 4, timeout_s=30)
    assert opened(stack, key).value == {"n": 1}


def test_a_single_key_gist_of_the_old_layout_is_read_written_and_restored(stack: Stack) -> None:
    from cmdgate.state.model import digest_of
    from cmdgate.state.store import StateStore

    key = f"legacy{uuid.uuid4().hex[:8]}.k"  # a namespace of its own: no other key's sync places it
    store = StateStore(stack.aws("dynamodb"), stack.resource("StateTable"))
    store.commit(key, None, '{"n":1}', digest_of({"n": 1}))
    codec = codec_for("kms", stack.aws("kms"), stack.resource("StateKey"))
    content = layout.encode_legacy(codec, key, 1, '{"n":1}', deleted=False, updated_at="t", digest=digest_of({"n": 1}))
    created = httpx.post(
        f"{stack.state['gist_url']}/gists",
        json={"description": f"cmdgate state: {key}", "public": False, "files": {"state.json": {"content": content}}},
        headers=GITHUB,
    ).json()
    store.mark_synced(key, 1, created["id"], created["history"][0]["version"])

    assert stack.admin.get(f"/v1/state/{key}").json() == {"n": 1}
    stack.admin.patch(f"/v1/state/{key}", json={"n": 2}, headers=MERGE)
    wait_for(lambda: synced(stack, key) == 2, timeout_s=30)
    item = register(stack, key)
    assert item["gist_id"]["S"] == created["id"] and "shard" not in item  # still its own gist
    assert opened(stack, key).value == {"n": 2}
    stack.aws("dynamodb").delete_item(
        TableName=stack.resource("StateTable"), Key={"pk": {"S": f"key#{key}"}, "sk": {"S": f"v#{1:012d}"}}
    )
    assert stack.admin.get(f"/v1/state/{key}", params={"version": 1}).json() == {"n": 1}
    stack.admin.post(f"/v1/state/{key}/restore", json={"version": 1})
    wait_for(lambda: synced(stack, key) == 3, timeout_s=30)
    assert opened(stack, key).value == {"n": 1} and register(stack, key)["gist_id"]["S"] == created["id"]
