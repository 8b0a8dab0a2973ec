"""The api function's audit: admin actions append their items, runs and state writes carry the request's stamp."""

from __future__ import annotations

import json
import time

from tests.unit.api.conftest import Api, principal


def test_key_creation_and_revocation_are_audited_without_the_key(api: Api) -> None:
    created = api.call("POST", "/v1/admin/keys", body='{"name": "ci", "permissions": ["commands.list"]}')
    key_id, secret = created.json()["key_id"], created.json()["api_key"]
    api.call(
        "DELETE", f"/v1/admin/keys/{key_id}", resource="/v1/admin/keys/{key_id}", path_parameters={"key_id": key_id}
    )
    items = api.services.audit_table.items
    assert [(i["audit_action"], i["target"], i["audit_principal"], i["request_id"]) for i in items] == [
        ("key.created", key_id, "key:admin", "req-1"),
        ("key.revoked", key_id, "key:admin", "req-1"),
    ]
    assert json.loads(items[0]["details_json"]) == {"key_id": key_id, "name": "ci", "permissions": ["commands.list"]}
    assert secret not in json.dumps(items)


def test_a_redrive_is_audited_only_when_it_redrove_something(api: Api) -> None:
    api.call("POST", "/v1/admin/dlq/redrive", body='{"execution_ids": ["abc"]}')
    assert api.services.audit_table.items == []


def test_a_run_records_its_stamp_and_idempotency_key_on_the_execution(api: Api) -> None:
    answer = api.call(
        "POST",
        "/v1/commands/echo",
        resource="/v1/commands/{name}",
        path_parameters={"name": "echo"},
        headers={"Idempotency-Key": "order-7"},
        body='{"message": "yo"}',
        caller=principal("commands.run:echo"),
    )
    assert answer.status == 200, answer.body
    (record,) = api.services.execution_store.items.values()
    assert record.audit["audit_action"] == "command.run"
    assert record.audit["audit_principal"] == "key:alice"
    assert (record.audit["request_id"], record.audit["idempotency_key"]) == ("req-1", "order-7")
    assert record.audit["audit_at"].endswith(f"#{record.execution_id}")
    # The record is the run's audit entry: kept for the audit retention (400 days), not the executions' 30.
    assert abs(record.expires_at - (time.time() + 400 * 86400)) < 60


def test_state_routes_hand_the_request_stamp_to_the_state_service(api: Api) -> None:
    api.call(
        "PUT",
        "/v1/state/prefs",
        resource="/v1/state/{key}",
        path_parameters={"key": "prefs"},
        headers={"If-None-Match": "*"},
        body='{"a": 1}',
    )
    (stamp,) = api.services.audit_stamps
    assert stamp is not None and (stamp.principal_id, stamp.request_id) == ("key:admin", "req-1")


def test_the_audit_route_is_admin_only_and_refuses_bad_queries(api: Api) -> None:
    api.call("POST", "/v1/admin/keys", body='{"name": "ci", "permissions": ["commands.list"]}')
    listed = api.call("GET", "/v1/admin/audit", query={"action": "key.created", "since": "2026-12-01T00:00:00Z"})
    assert listed.status == 200, listed.body
    assert [e["action"] for e in listed.json()["entries"]] == ["key.created"]
    assert listed.json()["next_cursor"] is None
    assert api.services.audit_trail.calls[-1]["action"] == "key.created"
    refused = api.call("GET", "/v1/admin/audit", caller=principal("commands.list"))
    assert (refused.status, refused.json()["code"]) == (403, "FORBIDDEN")
    bad = api.call("GET", "/v1/admin/audit", query={"since": "yesterday"})
    assert (bad.status, bad.headers["content-type"]) == (400, "application/problem+json")
