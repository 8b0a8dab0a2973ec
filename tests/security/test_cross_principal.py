"""Cross-principal reads and writes: another principal's executions, state keys and audit records.

An execution is "not found" (404) to anyone but its owner and admin, for reading and cancelling
alike, and a cancel refused that way changes nothing; state scoping is in
test_state_authorization.py; the audit trail is admin-only (test_escalation.py covers the route).
"""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem
from tests.security.effects import execution_item

pytestmark = pytest.mark.integration


def test_another_principal_cannot_see_an_execution(stack: Stack) -> None:
    owner = stack.client(stack.create_key(["commands.run:echo"]))
    other = stack.client(stack.create_key(["commands.run:echo"]))
    execution_id = owner.post("/v1/commands/echo", json={}).json()["execution_id"]
    assert owner.get(f"/v1/executions/{execution_id}").status_code == 200
    assert_problem(other.get(f"/v1/executions/{execution_id}"), 404, "EXECUTION_NOT_FOUND")
    assert stack.admin.get(f"/v1/executions/{execution_id}").status_code == 200


def test_another_principal_cannot_cancel_a_queued_execution(stack: Stack) -> None:
    owner = stack.client(stack.create_key(["commands.run:echo"]))
    other = stack.client(stack.create_key(["commands.run:echo"]))
    queued = owner.post(
        "/v1/commands/echo",
        json={"message": "mine"},
        headers={"Prefer": "respond-async", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert queued.status_code == 202, queued.text
    execution_id = queued.json()["execution_id"]
    before = execution_item(stack, execution_id)
    assert_problem(other.post(f"/v1/executions/{execution_id}/cancel"), 404, "EXECUTION_NOT_FOUND")
    after = execution_item(stack, execution_id)
    assert "cancel_requested" not in after and after.get("status") != {"S": "cancelled"}
    assert after["principal_id"] == before["principal_id"]
