"""State scoping holds on every path to a key: routes, state commands (sync and async) and the worker."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration
MERGE = {"Content-Type": "application/merge-patch+json"}


def new_key(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def seed(stack: Stack, key: str, value: object) -> None:
    created = stack.admin.put(f"/v1/state/{key}", json=value, headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text


def test_state_merge_needs_write_on_the_key_as_patch_does(stack: Stack) -> None:
    secret = new_key("team-b")
    seed(stack, secret, {"owner": "b"})
    client = stack.client(stack.create_key(["commands.run:state.merge"]))
    refused = client.post("/v1/commands/state.merge", json={"key": secret, "patch": {"owner": "a"}})
    assert_problem(refused, 403, "FORBIDDEN")
    assert stack.admin.get(f"/v1/state/{secret}").json() == {"owner": "b"}


def test_state_get_needs_read_on_the_key(stack: Stack) -> None:
    secret = new_key("team-b")
    seed(stack, secret, {"password": "hunter2"})
    client = stack.client(stack.create_key(["commands.run:state.get", "state.read:team-a.*"]))
    refused = client.post("/v1/commands/state.get", json={"key": secret})
    assert_problem(refused, 403, "FORBIDDEN")
    assert "hunter2" not in refused.text
    mine = new_key("team-a")
    seed(stack, mine, {"n": 1})
    allowed = client.post("/v1/commands/state.get", json={"key": mine})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"]["value"] == {"n": 1}


def test_counter_increment_cannot_create_a_key_outside_its_scope(stack: Stack) -> None:
    target = new_key("prod")
    client = stack.client(stack.create_key(["commands.run:counter.increment", "state.write:team-a.*"]))
    assert_problem(client.post("/v1/commands/counter.increment", json={"key": target}), 403, "FORBIDDEN")
    assert_problem(stack.admin.get(f"/v1/state/{target}"), 404, "STATE_NOT_FOUND")


def test_run_star_alone_reaches_no_key_sync_or_async(stack: Stack) -> None:
    target = new_key("team-b")
    seed(stack, target, {"v": 1})
    client = stack.client(stack.create_key(["commands.run:*"]))
    assert_problem(client.post("/v1/commands/state.get", json={"key": target}), 403, "FORBIDDEN")
    queued = client.post(
        "/v1/commands/state.merge",
        json={"key": target, "patch": {"v": 2}},
        headers={"Prefer": "respond-async"},
    )
    # Refused before it is queued: nothing for the worker to run.
    assert_problem(queued, 403, "FORBIDDEN")
    assert stack.admin.get(f"/v1/state/{target}").json() == {"v": 1}


def test_async_state_command_runs_with_its_authorized_permissions(stack: Stack) -> None:
    key = new_key("team-a")
    seed(stack, key, {"v": 1})
    client = stack.client(stack.create_key(["commands.run:state.merge", "state.read:team-a.*", "state.write:team-a.*"]))
    queued = client.post(
        "/v1/commands/state.merge", json={"key": key, "patch": {"v": 2}}, headers={"Prefer": "respond-async"}
    )
    assert queued.status_code == 202, queued.text
    location = queued.headers["location"]

    def succeeded() -> dict | None:
        view = client.get(location).json()
        return view if view["status"] == "succeeded" else None

    done = wait_for(succeeded)
    assert done["result"]["value"] == {"v": 2}
    assert stack.admin.get(f"/v1/state/{key}").json() == {"v": 2}
    record = (
        stack.aws("dynamodb")
        .get_item(TableName=stack.resource("ExecutionsTable"), Key={"execution_id": {"S": done["execution_id"]}})
        .get("Item", {})
    )
    assert {p["S"] for p in record["permissions"]["L"]} == {
        "commands.run:state.merge",
        "state.read:team-a.*",
        "state.write:team-a.*",
    }


def test_worker_refuses_a_queued_run_whose_record_lacks_the_permission(stack: Stack) -> None:
    """A record the api function did not authorize (forged, or older than kept permissions) runs nothing."""
    key = new_key("team-b")
    seed(stack, key, {"v": 1})
    execution_id = uuid.uuid4().hex
    table = stack.resource("ExecutionsTable")
    stack.aws("dynamodb").put_item(
        TableName=table,
        Item={
            "execution_id": {"S": execution_id},
            "command": {"S": "state.merge"},
            "principal_id": {"S": "key:forged"},
            "mode": {"S": "async"},
            "status": {"S": "queued"},
            "params_json": {"S": f'{{"key":"{key}","patch":{{"v":99}}}}'},
            "attempts": {"N": "0"},
            "created_at": {"S": "2026-12-01T00:00:00.000Z"},
            "expires_at": {"N": "4102444800"},
            "permissions": {"L": [{"S": "commands.run:state.merge"}]},
        },
    )
    stack.aws("sqs").send_message(
        QueueUrl=stack.resource("ExecutionsQueue"), MessageBody=f'{{"execution_id": "{execution_id}"}}'
    )

    def finished() -> dict | None:
        item = stack.aws("dynamodb").get_item(TableName=table, Key={"execution_id": {"S": execution_id}})["Item"]
        return item if item["status"]["S"] == "failed" else None

    failed = wait_for(finished)
    assert failed["error"]["M"]["code"]["S"] == "FORBIDDEN"
    assert stack.admin.get(f"/v1/state/{key}").json() == {"v": 1}


def test_counter_on_a_non_integer_is_409_and_leaves_the_value(stack: Stack) -> None:
    key = new_key("team-a")
    seed(stack, key, {"not": "a number"})
    outcome = stack.admin.post("/v1/commands/counter.increment", json={"key": key, "by": 5})
    assert_problem(outcome, 409, "STATE_NOT_A_COUNTER")
    read = stack.admin.get(f"/v1/state/{key}")
    assert read.json() == {"not": "a number"}
    assert read.headers["state-version"] == "1"
    assert_problem(
        stack.admin.post("/v1/commands/counter.increment", json={"key": key, "by": True}), 422, "VALIDATION_FAILED"
    )


def test_a_writer_without_read_gets_204_with_headers_and_no_value(stack: Stack) -> None:
    key = new_key("team-w")
    seed(stack, key, {"secret": "s3"})
    writer = stack.client(stack.create_key([f"state.write:{key}"]))
    patched = writer.patch(f"/v1/state/{key}", json={"extra": 1}, headers=MERGE)
    assert patched.status_code == 204, patched.text
    assert patched.content == b""
    assert patched.headers["etag"] == '"2"' and patched.headers["state-version"] == "2"
    restored = writer.post(f"/v1/state/{key}/restore", json={"version": 1})
    assert restored.status_code == 204
    assert restored.content == b"" and restored.headers["state-version"] == "3"
    reader = stack.client(stack.create_key([f"state.write:{key}", f"state.read:{key}"]))
    answered = reader.patch(f"/v1/state/{key}", json={"more": 2}, headers=MERGE)
    assert answered.status_code == 200
    assert answered.json() == {"secret": "s3", "more": 2}
