"""Admin view of dead-lettered executions and their redrive (exactly one new attempt, even when racing)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.conftest import MAX_RECEIVE_COUNT, Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


def dead_lettered(stack: Stack) -> str:
    response = stack.admin.post("/v1/commands/fail", json={"mode": "transient"}, headers={"Prefer": "respond-async"})
    execution_id = str(response.json()["execution_id"])
    wait_for(lambda: execution(stack, execution_id)["status"] == "dead_lettered", timeout_s=60)
    return execution_id


def execution(stack: Stack, execution_id: str) -> dict[str, Any]:
    body: dict[str, Any] = stack.admin.get(f"/v1/executions/{execution_id}").json()
    return body


def test_dead_letters_are_listed_and_redriven_exactly_once(stack: Stack) -> None:
    execution_id = dead_lettered(stack)
    listed: list[str] = []
    cursor = None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = stack.admin.get("/v1/admin/dlq", params=params).json()
        listed += [e["execution_id"] for e in page["executions"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert execution_id in listed

    def redrive(_: int) -> dict[str, Any]:
        answer: dict[str, Any] = stack.admin.post(
            "/v1/admin/dlq/redrive", json={"execution_ids": [execution_id]}
        ).json()
        return answer

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(redrive, range(2)))
    assert sorted(len(a["redriven"]) for a in answers) == [0, 1]  # two racing redrives, one new attempt
    done = wait_for(
        lambda: (
            (e := execution(stack, execution_id))["status"] == "dead_lettered"
            and e["attempts"] > MAX_RECEIVE_COUNT
            and e
        ),
        timeout_s=60,
    )
    assert done["attempts"] == MAX_RECEIVE_COUNT + 1


def test_redrive_of_something_not_dead_lettered_is_skipped(stack: Stack) -> None:
    ok = stack.admin.post("/v1/commands/echo", json={}).json()["execution_id"]
    answer = stack.admin.post("/v1/admin/dlq/redrive", json={"execution_ids": [ok, "nope"]}).json()
    assert answer == {"redriven": [], "skipped": [ok, "nope"]}


def test_dead_letter_routes_need_admin(stack: Stack) -> None:
    client = stack.client(stack.create_key(["commands.run:*"]))
    assert_problem(client.get("/v1/admin/dlq"), 403, "FORBIDDEN")
    assert_problem(client.post("/v1/admin/dlq/redrive", json={}), 403, "FORBIDDEN")
