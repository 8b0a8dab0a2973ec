"""A small version of the async scale check (bench/async_drain.py runs 1,000): 50 `count` executions, 10 %
failing transiently once after counting, 2 % failing permanently, one failing every time: each ends as
expected, none is lost, and every counter moved exactly once."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.conftest import MAX_RECEIVE_COUNT, Stack, wait_for

pytestmark = pytest.mark.integration
N = 50
FINAL = {"succeeded", "failed", "dead_lettered", "cancelled"}


def plan(run: str) -> list[tuple[str, dict[str, Any], str, int]]:
    """(key, params, expected status, expected attempts) of each execution."""
    planned = []
    for i in range(N):
        key = f"mix-{run}-{i}"
        if i < 5:
            planned.append((key, {"key": key, "fail_attempts": 1}, "succeeded", 2))
        elif i == 5:
            planned.append((key, {"key": key, "fail_permanently": True}, "failed", 1))
        elif i == 6:
            planned.append((key, {"key": key, "fail_attempts": 100}, "dead_lettered", MAX_RECEIVE_COUNT))
        else:
            planned.append((key, {"key": key}, "succeeded", 1))
    return planned


def batch_get(stack: Stack, table: str, keys: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    dynamodb, found = stack.aws("dynamodb"), []
    request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True, **extra}}
    while request:
        answer = dynamodb.batch_get_item(RequestItems=request)
        found.extend(answer["Responses"].get(table, []))
        request = answer.get("UnprocessedKeys") or {}
    return found


def test_a_mix_of_failing_async_commands_ends_as_expected_with_each_effect_once(stack: Stack) -> None:
    planned = plan(uuid.uuid4().hex[:8])

    def submit(item: tuple[str, dict[str, Any], str, int]) -> str:
        key, params, _, _ = item
        with stack.admin as client:
            answer = client.post(
                "/v1/commands/count", json=params, headers={"Prefer": "respond-async", "Idempotency-Key": key}
            )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["execution_id"])

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(submit, planned))
    table = stack.resource("ExecutionsTable")

    def ended() -> dict[str, dict[str, Any]] | None:
        items = batch_get(
            stack,
            table,
            [{"execution_id": {"S": i}} for i in ids],
            ProjectionExpression="execution_id, #s, attempts",
            ExpressionAttributeNames={"#s": "status"},
        )
        found = {item["execution_id"]["S"]: item for item in items}
        return found if all(found.get(i, {}).get("status", {}).get("S") in FINAL for i in ids) else None

    found = wait_for(ended, timeout_s=90, interval_s=1.0)
    print(f"\n{N} async executions ended {time.monotonic() - started:.1f} s after the first submission")
    counters = {
        item["pk"]["S"].removeprefix("count#"): int(item["executions"]["N"])
        for item in batch_get(stack, stack.resource("ControlTable"), [{"pk": {"S": f"count#{k}"}} for k, *_ in planned])
    }
    outcomes = [
        (found[i]["status"]["S"], int(found[i]["attempts"]["N"]), counters.get(key))
        for i, (key, _, _, _) in zip(ids, planned, strict=True)
    ]
    assert outcomes == [(status, attempts, 1) for _, _, status, attempts in planned]
