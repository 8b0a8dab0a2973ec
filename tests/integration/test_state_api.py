"""The State endpoints of the contract against the local stack (DynamoDB side; gist sync has its own tests)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration
MERGE = {"Content-Type": "application/merge-patch+json"}


def new_key(prefix: str = "team-a") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def test_create_replace_read_and_conditional_get(stack: Stack) -> None:
    key, client = new_key(), stack.admin
    created = client.put(f"/v1/state/{key}", json={"a": 1}, headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    assert created.headers["state-version"] == "1"
    assert created.headers["gist-synced-version"] == "0"
    assert_problem(client.put(f"/v1/state/{key}", json={}, headers={"If-None-Match": "*"}), 412, "PRECONDITION_FAILED")
    assert_problem(client.put(f"/v1/state/{key}", json={}), 428, "PRECONDITION_REQUIRED")
    replaced = client.put(f"/v1/state/{key}", json={"a": 2}, headers={"If-Match": '"1"'})
    assert replaced.status_code == 200
    assert replaced.headers["etag"] == '"2"'
    assert_problem(client.put(f"/v1/state/{key}", json={}, headers={"If-Match": '"1"'}), 412, "PRECONDITION_FAILED")
    read = client.get(f"/v1/state/{key}")
    assert read.json() == {"a": 2}
    assert read.headers["etag"] == '"2"' and read.headers["last-modified"].endswith("GMT")
    not_modified = client.get(f"/v1/state/{key}", headers={"If-None-Match": '"2"'})
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == '"2"'


def test_replace_of_a_missing_key_is_412_and_read_is_404(stack: Stack) -> None:
    key = new_key()
    assert_problem(
        stack.admin.put(f"/v1/state/{key}", json={}, headers={"If-Match": '"1"'}), 412, "PRECONDITION_FAILED"
    )
    assert_problem(stack.admin.get(f"/v1/state/{key}"), 404, "STATE_NOT_FOUND")


def test_merge_patch_delete_and_versions_never_reused(stack: Stack) -> None:
    key, client = new_key(), stack.admin
    client.put(f"/v1/state/{key}", json={"a": 1, "b": {"c": 2}}, headers={"If-None-Match": "*"})
    assert_problem(client.patch(f"/v1/state/{key}", json={"a": 3}), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert client.patch(f"/v1/state/{key}", json={"a": 3}).headers["accept-patch"] == "application/merge-patch+json"
    patched = client.patch(f"/v1/state/{key}", json={"a": None, "b": {"d": 4}}, headers=MERGE)
    assert patched.status_code == 200
    assert patched.json() == {"b": {"c": 2, "d": 4}}
    assert patched.headers["etag"] == '"2"'
    assert_problem(client.delete(f"/v1/state/{key}"), 428, "PRECONDITION_REQUIRED")
    assert client.delete(f"/v1/state/{key}", headers={"If-Match": '"2"'}).status_code == 204
    assert_problem(client.get(f"/v1/state/{key}"), 404, "STATE_NOT_FOUND")
    assert_problem(client.patch(f"/v1/state/{key}", json={}, headers=MERGE), 404, "STATE_NOT_FOUND")
    again = client.put(f"/v1/state/{key}", json={"fresh": True}, headers={"If-None-Match": "*"})
    assert again.status_code == 201
    assert again.headers["etag"] == '"4"'  # 3 was the delete: versions are never reused


def test_versions_history_and_restore(stack: Stack) -> None:
    key, client = new_key(), stack.admin
    client.put(f"/v1/state/{key}", json={"v": 1}, headers={"If-None-Match": "*"})
    client.put(f"/v1/state/{key}", json={"v": 2}, headers={"If-Match": '"1"'})
    assert client.get(f"/v1/state/{key}", params={"version": 1}).json() == {"v": 1}
    assert_problem(client.get(f"/v1/state/{key}", params={"version": 99}), 404, "VERSION_NOT_RETAINED")
    history = client.get(f"/v1/state/{key}/history").json()
    assert [v["version"] for v in history["versions"]] == [2, 1]
    page = client.get(f"/v1/state/{key}/history", params={"limit": 1}).json()
    assert [v["version"] for v in page["versions"]] == [2] and page["next_cursor"]
    rest = client.get(f"/v1/state/{key}/history", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [v["version"] for v in rest["versions"]] == [1]
    restored = client.post(f"/v1/state/{key}/restore", json={"version": 1})
    assert restored.status_code == 200
    assert restored.json() == {"v": 1}
    assert restored.headers["etag"] == '"3"'


def test_size_limits(stack: Stack) -> None:
    key, client = new_key(), stack.admin
    too_big = {"blob": "x" * (257 * 1024)}
    assert_problem(
        client.put(f"/v1/state/{key}", json=too_big, headers={"If-None-Match": "*"}), 413, "PAYLOAD_TOO_LARGE"
    )
    client.put(f"/v1/state/{key}", json={"a": "x" * (200 * 1024)}, headers={"If-None-Match": "*"})
    grown = client.patch(f"/v1/state/{key}", json={"b": "y" * (100 * 1024)}, headers=MERGE)
    assert_problem(grown, 422, "STATE_TOO_LARGE")


def test_keys_and_permissions(stack: Stack) -> None:
    assert_problem(stack.admin.get("/v1/state/Upper-Case"), 400, "INVALID_STATE_KEY")
    key = new_key("team-a")
    stack.admin.put(f"/v1/state/{key}", json={"x": 1}, headers={"If-None-Match": "*"})
    reader = stack.client(stack.create_key(["state.read:team-a.*"]))
    assert reader.get(f"/v1/state/{key}").json() == {"x": 1}
    assert_problem(reader.get(f"/v1/state/{new_key('team-b')}"), 403, "FORBIDDEN")
    denied = reader.put(f"/v1/state/{key}", json={}, headers={"If-Match": '"1"'})
    assert_problem(denied, 403, "FORBIDDEN")  # the gateway: no state.write permission at all


def test_concurrent_merge_patches_of_distinct_fields_all_survive(stack: Stack) -> None:
    key = new_key()
    stack.admin.put(f"/v1/state/{key}", json={}, headers={"If-None-Match": "*"})

    def patch(i: int) -> int:
        return stack.admin.patch(f"/v1/state/{key}", json={f"f{i}": i}, headers=MERGE).status_code

    # Optimistic writes: every lost race re-reads and retries, so none of the 50 is lost.
    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(patch, range(50))) == [200] * 50
    final = stack.admin.get(f"/v1/state/{key}")
    assert final.json() == {f"f{i}": i for i in range(50)}
    assert final.headers["etag"] == '"51"'


def test_concurrent_counter_increments_are_all_counted(stack: Stack) -> None:
    key = new_key("counters")

    def increment(_: int) -> int:
        return stack.admin.post("/v1/commands/counter.increment", json={"key": key, "by": 1}).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(increment, range(32)))
    assert statuses == [200] * 32
    assert stack.admin.get(f"/v1/state/{key}").json() == 32


def test_a_lease_holder_keeps_optimistic_writers_out_until_its_lease_ends(stack: Stack) -> None:
    from cmdgate.locks import DynamoDBLockStore, LockManager
    from cmdgate.state.store import lease_name

    key = new_key()
    stack.admin.put(f"/v1/state/{key}", json={"v": 1}, headers={"If-None-Match": "*"})
    locks = LockManager(DynamoDBLockStore(stack.aws("dynamodb"), stack.resource("ControlTable")))
    lease = locks.acquire(lease_name(key), "an-operator", lease_s=60)
    refused = assert_problem(
        stack.admin.patch(f"/v1/state/{key}", json={"v": 2}, headers=MERGE), 409, "STATE_CONTENTION"
    )
    assert (
        refused["detail"]
        and 1 <= int(stack.admin.patch(f"/v1/state/{key}", json={"v": 2}, headers=MERGE).headers["retry-after"]) <= 60
    )
    command = stack.admin.post("/v1/commands/state.merge", json={"key": key, "patch": {"v": 3}})
    assert_problem(command, 409, "STATE_CONTENTION")
    assert stack.admin.get(f"/v1/state/{key}").json() == {"v": 1}
    locks.release(lease)
    assert stack.admin.patch(f"/v1/state/{key}", json={"v": 2}, headers=MERGE).json() == {"v": 2}


@pytest.mark.parametrize(
    "body",
    ['{"a": 9007199254740993}', '{"a": NaN}', '{"a": 1e400}', "[" * 3000 + "]" * 3000],
    ids=["beyond-2**53", "nan", "overflow", "nested-3000"],
)
def test_hostile_values_are_400_not_500(stack: Stack, body: str) -> None:
    response = stack.admin.put(
        f"/v1/state/{new_key()}", content=body, headers={"If-None-Match": "*", "Content-Type": "application/json"}
    )
    assert_problem(response, 400, "INVALID_JSON")


def test_a_forged_history_cursor_is_400(stack: Stack) -> None:
    key = new_key()
    stack.admin.put(f"/v1/state/{key}", json=1, headers={"If-None-Match": "*"})
    forged = "eyJzayI6Inp6eiJ9"  # {"sk":"zzz"}: outside the version log
    assert_problem(stack.admin.get(f"/v1/state/{key}/history", params={"cursor": forged}), 400, "INVALID_CURSOR")
