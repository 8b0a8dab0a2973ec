"""Idempotency-Key semantics of POST /v1/commands/{name} against the local stack."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.conftest import Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


def counter(stack: Stack, key: str) -> int:
    item = (
        stack.aws("dynamodb")
        .get_item(TableName=stack.resource("ControlTable"), Key={"pk": {"S": f"count#{key}"}}, ConsistentRead=True)
        .get("Item")
    )
    return int(item["executions"]["N"]) if item else 0


def new_key() -> str:
    return uuid.uuid4().hex


def test_replay_returns_the_original_answer_and_runs_once(stack: Stack) -> None:
    key, counter_key = new_key(), new_key()
    first = stack.admin.post("/v1/commands/count", json={"key": counter_key}, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    again = stack.admin.post("/v1/commands/count", json={"key": counter_key}, headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert counter(stack, counter_key) == 1


def test_structured_field_and_bare_forms_name_the_same_key(stack: Stack) -> None:
    key, counter_key = new_key(), new_key()
    bare = stack.admin.post("/v1/commands/count", json={"key": counter_key}, headers={"Idempotency-Key": key})
    quoted = stack.admin.post("/v1/commands/count", json={"key": counter_key}, headers={"Idempotency-Key": f'"{key}"'})
    assert quoted.headers["idempotent-replayed"] == "true"
    assert quoted.json()["execution_id"] == bare.json()["execution_id"]


def test_same_key_with_different_params_is_422(stack: Stack) -> None:
    key = new_key()
    assert stack.admin.post("/v1/commands/count", json={"key": "a"}, headers={"Idempotency-Key": key}).is_success
    response = stack.admin.post("/v1/commands/count", json={"key": "b"}, headers={"Idempotency-Key": key})
    assert_problem(response, 422, "IDEMPOTENCY_KEY_REUSED")


def test_canonical_json_makes_key_order_and_spacing_irrelevant(stack: Stack) -> None:
    key = new_key()
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    first = stack.admin.post("/v1/commands/echo", content='{"message":"m","data":{"b":1,"a":2}}', headers=headers)
    second = stack.admin.post(
        "/v1/commands/echo", content='{ "data": {"a": 2, "b": 1.0}, "message": "m" }', headers=headers
    )
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()


def test_keys_are_scoped_to_the_principal(stack: Stack) -> None:
    key, counter_key = new_key(), new_key()
    other = stack.client(stack.create_key(["commands.run:count"]))
    stack.admin.post("/v1/commands/count", json={"key": counter_key}, headers={"Idempotency-Key": key})
    response = other.post("/v1/commands/count", json={"key": counter_key}, headers={"Idempotency-Key": key})
    assert response.status_code == 200
    assert "idempotent-replayed" not in response.headers
    assert counter(stack, counter_key) == 2


def test_missing_key_where_required_is_400(stack: Stack) -> None:
    assert_problem(stack.admin.post("/v1/commands/count", json={"key": "x"}), 400, "IDEMPOTENCY_KEY_MISSING")


@pytest.mark.parametrize("value", ["", "a" * 256, "caf\u00e9", '"unterminated', "two words"])
def test_malformed_key_is_400(stack: Stack, value: str) -> None:
    response = stack.admin.post("/v1/commands/echo", json={}, headers={b"Idempotency-Key": value.encode()})
    assert_problem(response, 400, "INVALID_IDEMPOTENCY_KEY")


def test_failed_outcome_is_stored_and_replayed_not_rerun(stack: Stack) -> None:
    key = new_key()
    first = stack.admin.post("/v1/commands/fail", json={"mode": "permanent"}, headers={"Idempotency-Key": key})
    problem = assert_problem(first, 500, "COMMAND_FAILED")
    again = stack.admin.post("/v1/commands/fail", json={"mode": "permanent"}, headers={"Idempotency-Key": key})
    assert again.status_code == 500
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["execution_id"] == problem["execution_id"]


def test_refusals_before_start_are_not_stored(stack: Stack) -> None:
    key = new_key()
    invalid = stack.admin.post("/v1/commands/count", json={"key": "bad key!"}, headers={"Idempotency-Key": key})
    assert_problem(invalid, 422, "VALIDATION_FAILED")
    valid = stack.admin.post("/v1/commands/count", json={"key": new_key()}, headers={"Idempotency-Key": key})
    assert valid.status_code == 200
    assert "idempotent-replayed" not in valid.headers


def test_async_replay_returns_the_same_location(stack: Stack) -> None:
    key = new_key()
    headers = {"Idempotency-Key": key, "Prefer": "respond-async"}
    first = stack.admin.post("/v1/commands/echo", json={"message": "x"}, headers=headers)
    again = stack.admin.post("/v1/commands/echo", json={"message": "x"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["preference-applied"] == "respond-async"
    assert again.headers["idempotent-replayed"] == "true"


def test_in_progress_duplicate_gets_409_with_retry_after(stack: Stack) -> None:
    key, counter_key = new_key(), new_key()
    # The duplicate must arrive while the first still runs: it may take a cold api environment, whose
    # init under `make test`'s coverage takes several seconds on a loaded machine (docs/coverage.md).
    body = {"key": counter_key, "hold_s": 8}
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(stack.admin.post, "/v1/commands/count", json=body, headers={"Idempotency-Key": key})
        wait_for(lambda: counter(stack, counter_key) == 1, timeout_s=20, interval_s=0.05)
        duplicate = stack.admin.post("/v1/commands/count", json=body, headers={"Idempotency-Key": key})
        assert_problem(duplicate, 409, "IDEMPOTENCY_IN_PROGRESS")
        assert int(duplicate.headers["retry-after"]) >= 1
        assert first.result().status_code == 200
    assert counter(stack, counter_key) == 1


def test_fifty_concurrent_identical_requests_run_once(stack: Stack) -> None:
    key, counter_key = new_key(), new_key()

    def post(_: int) -> Any:
        return stack.admin.post("/v1/commands/count", json={"key": counter_key}, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(post, range(50)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, statuses
    originals = [r for r in responses if r.status_code == 200 and "idempotent-replayed" not in r.headers]
    assert len(originals) == 1
    assert counter(stack, counter_key) == 1
    execution_ids = {r.json()["execution_id"] for r in responses if r.status_code == 200}
    assert len(execution_ids) == 1
