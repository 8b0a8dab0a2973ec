"""The audit trail of a run of actions against the local stack: every action, in order, with no secret in it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.integration.test_cli import Cli, cli  # noqa: F401 - the CLI fixture, reused
from tests.integration.test_dead_letters import dead_lettered
from tests.integration.test_http_request import Upstream, upstream  # noqa: F401 - the upstream fixture, reused

pytestmark = pytest.mark.integration
TOKEN = "audit-secret-" + uuid.uuid4().hex


def audit(stack: Stack, limit: int = 3, **params: str) -> list[dict[str, Any]]:
    """Every entry, following the cursor with a small page (so the merge across sources is paged too)."""
    entries: list[dict[str, Any]] = []
    query: dict[str, str | int] = {**params, "limit": limit}
    for _ in range(200):
        page = stack.admin.get("/v1/admin/audit", params=query)
        assert page.status_code == 200, page.text
        for secret in (stack.admin_key, TOKEN):
            assert secret not in page.text
        body = page.json()
        entries += body["entries"]
        if not body["next_cursor"]:
            return entries
        query["cursor"] = body["next_cursor"]
    raise AssertionError("the cursor never ended")


def done(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.headers["x-request-id"]


def test_the_trail_shows_every_action_in_order_with_who_and_from_where(
    stack: Stack,
    upstream: Upstream,  # noqa: F811
    cli: Cli,  # noqa: F811
) -> None:
    since = datetime.fromtimestamp(time.time() - 1, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    state_key = f"audit-{uuid.uuid4().hex[:12]}"
    expected: list[tuple[str, str, str]] = []  # (action, principal, request id)

    created = stack.admin.post(
        "/v1/admin/keys",
        json={"name": "audited", "permissions": ["commands.run:echo", f"state.write:{state_key}", "state.read:*"]},
    )
    expected.append(("key.created", "key:admin", done(created, 201)))
    key_id, api_key = created.json()["key_id"], created.json()["api_key"]
    caller = f"key:{key_id}"
    user = stack.client(api_key)

    idempotency_key = f"audit-{uuid.uuid4().hex}"
    ran = user.post("/v1/commands/echo", json={"message": "hi"}, headers={"Idempotency-Key": idempotency_key})
    expected.append(("command.run", caller, done(ran, 200)))
    echo_id = ran.json()["execution_id"]
    replayed = user.post("/v1/commands/echo", json={"message": "hi"}, headers={"Idempotency-Key": idempotency_key})
    assert replayed.headers.get("idempotent-replayed") == "true"  # a replay runs nothing: no entry

    secret_run = stack.admin.post(
        "/v1/commands/http.request",
        json={"url": f"{upstream.url}/audited", "headers": {"Authorization": f"Bearer {TOKEN}"}},
    )
    expected.append(("command.run", "key:admin", done(secret_run, 200)))

    put = user.put(f"/v1/state/{state_key}", json={"v": 1}, headers={"If-None-Match": "*"})
    expected.append(("state.written", caller, done(put, 201)))
    deleted = user.delete(f"/v1/state/{state_key}", headers={"If-Match": '"1"'})
    expected.append(("state.deleted", caller, done(deleted, 204)))
    restored = user.post(f"/v1/state/{state_key}/restore", json={"version": 1})
    expected.append(("state.restored", caller, done(restored, 200)))

    dead = dead_lettered(stack)  # its run is audited as the admin's command.run
    redriven = stack.admin.post("/v1/admin/dlq/redrive", json={"execution_ids": [dead]})
    assert redriven.json()["redriven"] == [dead]
    revoked = stack.admin.delete(f"/v1/admin/keys/{key_id}")

    entries = audit(stack, since=since)
    admin = next(e["principal"] for e in entries if e["request_id"] == expected[0][2])  # the admin key's principal
    expected = [(action, admin if who == "key:admin" else who, request) for action, who, request in expected]
    # From this test's first action on: `since` has second resolution, so the previous test's last
    # actions (in the same second) can come before it.
    first = next(i for i, e in enumerate(entries) if e["request_id"] == expected[0][2])
    mine = [e for e in entries[first:] if e["principal"] in (caller, admin)]
    fail_run = next((e for e in mine if e.get("execution_id") == dead), None)
    assert fail_run is not None, json.dumps(entries, indent=1)
    expected.insert(6, ("command.run", admin, fail_run["request_id"]))
    expected.append(("dlq.redriven", admin, done(redriven, 200)))
    expected.append(("key.revoked", admin, done(revoked, 204)))
    assert [(e["action"], e["principal"], e["request_id"]) for e in mine] == expected
    assert [e["at"] for e in mine] == sorted(e["at"] for e in mine)
    assert {e["source_ip"] for e in mine} == {"127.0.0.1"}

    by_action = {e["action"]: e for e in reversed(mine)}
    assert by_action["key.created"]["target"] == key_id and by_action["key.created"]["name"] == "audited"
    echo = next(e for e in mine if e.get("execution_id") == echo_id)
    assert (echo["command"], echo["idempotency_key"]) == ("echo", idempotency_key)
    assert [(e["key"], e["version"]) for e in mine if e["action"].startswith("state.")] == [
        (state_key, 1),
        (state_key, 2),
        (state_key, 3),
    ]
    assert by_action["dlq.redriven"]["redriven"] == [dead]
    assert api_key not in json.dumps(entries)

    # Filters: one principal, one action.
    assert [e["action"] for e in audit(stack, limit=2, since=since, principal=caller)] == [
        "command.run",
        "state.written",
        "state.deleted",
        "state.restored",
    ]
    revocations = audit(stack, since=since, action="key.revoked")  # the previous test's may come first
    assert {e["action"] for e in revocations} == {"key.revoked"}
    assert [e["target"] for e in revocations][-1:] == [key_id]

    # The CLI reads the same trail.
    shown = cli("-o", "json", "audit", "--principal", caller, "--since", since)
    assert shown.code == 0, shown.err
    assert [e["request_id"] for e in shown.json()["entries"]] == [r for _, p, r in expected if p == caller]

    # Nothing changes it through the API, and a non-admin cannot read it.
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert 400 <= stack.admin.request(method, "/v1/admin/audit").status_code < 500
    assert audit(stack, since=since, principal=caller)[0]["request_id"] == expected[1][2]
    other = stack.create_key(["commands.run:echo"])
    assert stack.client(other).get("/v1/admin/audit").status_code == 403
    bad = stack.admin.get("/v1/admin/audit", params={"since": "last tuesday"})
    assert (bad.status_code, bad.headers["content-type"]) == (400, "application/problem+json")
