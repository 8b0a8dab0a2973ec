"""Per-caller rate limits (one token bucket per principal, plus a command's own) through the local stack."""

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
    # The bucket is the principal's: another command, or another route, gets no fresh quota.
    assert_problem(client.post("/v1/commands/sleep", json={"seconds": 0}), 429, "RATE_LIMITED")
    assert_problem(client.get("/v1/commands"), 429, "RATE_LIMITED")


def test_a_quota_bounds_all_commands_of_a_key_together(stack: Stack) -> None:
    client = stack.client(key_with_limit(stack, 5, 60))
    commands = ["echo", "sleep", "state.get", "count", "blob", "fail"]
    statuses = [client.post(f"/v1/commands/{name}", json={}).status_code for name in commands for _ in range(5)]
    # 30 requests over six commands: 5 admitted in all (whatever each answered), the rest refused.
    assert len([s for s in statuses if s != 429]) == 5
    assert statuses.count(429) == 25


def test_a_command_limit_applies_on_top_of_the_callers(stack: Stack) -> None:
    client = stack.client(key_with_limit(stack, 10, 60))
    answers = [client.post("/v1/commands/limited", json={"n": n}) for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-policy"] == '"default";q=10;w=60, "command.limited";q=2;w=60'
    assert answers[0].headers["ratelimit"].startswith('"command.limited";r=1;')
    refused = assert_problem(answers[2], 429, "RATE_LIMITED")
    assert refused["violated-policies"] == ["command.limited"]
    # The refusal spent nothing of the caller's quota: 10 - 2 requests remain for the rest.
    echo = client.post("/v1/commands/echo", json={})
    assert echo.status_code == 200
    assert echo.headers["ratelimit"].startswith('"default";r=7;')


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
