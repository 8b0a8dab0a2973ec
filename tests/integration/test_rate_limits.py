"""Per-caller rate limits (token bucket per principal and command) through the local stack."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


def key_with_limit(stack: Stack, quota: int, window_s: int, permissions: list[str] | None = None) -> str:
    return stack.create_key(
        permissions or ["commands.run:*", "commands.list"], "limited", {"quota": quota, "window_s": window_s}
    )


def fields(value: str) -> dict[str, str]:
    return dict(re.findall(r";(\w+)=(\w+)", value))


def test_every_authenticated_answer_carries_the_ratelimit_fields(stack: Stack) -> None:
    client = stack.client(key_with_limit(stack, 5, 60))
    response = client.post("/v1/commands/echo", json={})
    assert response.headers["ratelimit-policy"] == '"default";q=5;w=60'
    assert response.headers["ratelimit"].startswith('"default";r=4;t=')
    problem = client.post("/v1/commands/echo", content="[]", headers={"Content-Type": "application/json"})
    assert problem.status_code == 400
    assert "ratelimit" in problem.headers


def test_over_the_quota_is_429_problem_with_retry_after(stack: Stack) -> None:
    client = stack.client(key_with_limit(stack, 3, 60))
    statuses = [client.post("/v1/commands/echo", json={}).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = client.post("/v1/commands/echo", json={})
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert body["violated-policies"] == ["default"]
    limit = fields(refused.headers["ratelimit"])
    assert limit["r"] == "0"
    assert int(refused.headers["retry-after"]) >= int(limit["t"]) >= 1
    # Buckets are per command: another command still has its own quota.
    assert client.post("/v1/commands/sleep", json={"seconds": 0}).status_code == 200


def test_replays_count_against_the_quota(stack: Stack) -> None:
    client = stack.client(key_with_limit(stack, 2, 60))
    headers = {"Idempotency-Key": "replayed-key"}
    assert client.post("/v1/commands/echo", json={}, headers=headers).status_code == 200
    assert client.post("/v1/commands/echo", json={}, headers=headers).headers["idempotent-replayed"] == "true"
    assert_problem(client.post("/v1/commands/echo", json={}, headers=headers), 429, "RATE_LIMITED")


def test_concurrent_requests_never_exceed_the_bucket(stack: Stack) -> None:
    quota, window_s = 10, 60
    client = stack.client(key_with_limit(stack, quota, window_s))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: client.post("/v1/commands/echo", json={}).status_code, range(3 * quota)))
    elapsed = time.monotonic() - started
    succeeded = statuses.count(200)
    assert set(statuses) <= {200, 429}
    # In any interval T at most q + T*q/w requests succeed; the whole burst fits in one such interval.
    assert quota <= succeeded <= quota + int(elapsed * quota / window_s)


def test_a_caller_mostly_refused_gets_a_tighter_policy(stack: Stack) -> None:
    client = stack.client(key_with_limit(stack, 100, 60, permissions=["commands.run:echo"]))
    refusals = [client.post("/v1/commands/fail", json={}).status_code for _ in range(30)]
    assert set(refusals) == {403}
    response = client.post("/v1/commands/echo", json={})
    assert response.status_code == 200
    assert response.headers["ratelimit-policy"] == '"tightened";q=25;w=60'
