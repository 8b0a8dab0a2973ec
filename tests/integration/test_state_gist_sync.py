"""Write-behind gist sync against the loopback Gist API: encrypted content, revisions, outages."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from cmdgate.crypto import codec_for
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


def gist_document(stack: Stack, gist_id: str) -> dict[str, Any]:
    gist = httpx.get(f"{stack.state['gist_url']}/gists/{gist_id}", headers={"Authorization": "Bearer test"}).json()
    return json.loads(gist["files"]["state.json"]["content"])


def decrypt(stack: Stack, key: str, envelope: dict[str, Any]) -> Any:
    codec = codec_for("kms", stack.aws("kms"), stack.resource("StateKey"))
    return json.loads(codec.decrypt(envelope, {"cmdgate:state-key": key}))


def admin(stack: Stack, path: str, body: dict[str, Any]) -> None:
    httpx.post(f"{stack.state['gist_url']}/_admin/{path}", json=body).raise_for_status()


def test_writes_reach_an_encrypted_gist_and_history_lists_revisions(stack: Stack) -> None:
    key = f"sync.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"secret": "s3cr3t", "n": 1}, headers={"If-None-Match": "*"})
    stack.admin.patch(f"/v1/state/{key}", json={"n": 2}, headers=MERGE)
    wait_for(lambda: synced(stack, key) == 2, timeout_s=30)
    gist_id = register(stack, key)["gist_id"]["S"]
    document = gist_document(stack, gist_id)
    assert document["version"] == 2
    assert "s3cr3t" not in json.dumps(document)  # a secret gist is readable by URL: content is encrypted
    assert decrypt(stack, key, document["value"]) == {"secret": "s3cr3t", "n": 2}
    history = stack.admin.get(f"/v1/state/{key}/history").json()["versions"]
    assert history[0]["version"] == 2 and history[0]["revision"]


def test_gist_outage_delays_sync_loses_nothing_and_drains(stack: Stack) -> None:
    key = f"outage.{uuid.uuid4().hex[:10]}"
    stack.admin.put(f"/v1/state/{key}", json={"n": 0}, headers={"If-None-Match": "*"})
    wait_for(lambda: synced(stack, key) == 1, timeout_s=30)
    admin(stack, "faults", {"mode": "502", "count": None})
    try:
        for n in range(1, 6):
            response = stack.admin.patch(f"/v1/state/{key}", json={"n": n}, headers=MERGE)
            assert response.status_code == 200  # writes keep succeeding during the outage
        assert stack.admin.get(f"/v1/state/{key}").headers["state-version"] == "6"
        wait_for(lambda: stack.client().get("/v1/health").json()["status"] == "degraded", timeout_s=60, interval_s=0.5)
        assert synced(stack, key) < 6
    finally:
        admin(stack, "faults", {"mode": "none"})
    recovered_at = time.monotonic()
    wait_for(lambda: synced(stack, key) == 6, timeout_s=90, interval_s=0.5)
    print(f"backlog drained {time.monotonic() - recovered_at:.1f} s after the gist API recovered")
    gist_id = register(stack, key)["gist_id"]["S"]
    assert decrypt(stack, key, gist_document(stack, gist_id)["value"]) == {"n": 5}


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
    gists_before = httpx.get(f"{stack.state['gist_url']}/_admin/stats").json()["gists"]

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
    # One gist for the key, and its newest revision holds the register's newest version.
    assert httpx.get(f"{stack.state['gist_url']}/_admin/stats").json()["gists"] == gists_before + 1
    document = gist_document(stack, item["gist_id"]["S"])
    assert document["version"] == int(item["version"]["N"])
    assert decrypt(stack, key, document["value"]) == 8
    versions = [
        json.loads(
            httpx.get(
                f"{stack.state['gist_url']}/gists/{item['gist_id']['S']}/{commit['version']}",
                headers={"Authorization": "Bearer test"},
            ).json()["files"]["state.json"]["content"]
        )["version"]
        for commit in httpx.get(
            f"{stack.state['gist_url']}/gists/{item['gist_id']['S']}/commits", headers={"Authorization": "Bearer test"}
        ).json()
    ]
    assert versions == sorted(versions, reverse=True)  # newest first, and never an older one after a newer
