"""Permission escalation: a principal allowed only `commands.run:echo` tries every route and every command.

Every route of the OpenAPI document (docs/openapi.json) is called with path parameters that name
someone else's things (the admin's execution, a state key, an API key), and every command of the
catalogue is asked for, sync and async. Each answer is a 403 or 404 problem, and nothing changed:
the principal owns no execution record, the state key, the other execution and the keys table
are as they were. The same holds for a JWT principal whose claims map to the same permission.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cmdgate_local.jwks_issuer import JwksIssuer
from tests.conftest import SUPABASE_AUDIENCE, SUPABASE_ISSUER, SUPABASE_RS_KID
from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem
from tests.security.effects import execution_item, executions_of, keys_named, state_versions

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {("GET", "/v1/health")}
SIGNED = {("POST", "/v1/webhooks/{source}")}  # signature-checked, no principal: tests/integration/test_webhooks.py


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every documented route."""
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    found = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    return sorted(set(found) - PUBLIC - SIGNED)


def echo_only_principal(stack: Stack, kind: str, jwks_issuer: JwksIssuer) -> tuple[str, str]:
    """(bearer token, principal id) of a principal whose only permission that runs anything is echo."""
    if kind == "api-key":
        key, record = stack.key_store().create(
            f"escalation-{uuid.uuid4().hex[:6]}", ["commands.run:echo"], {"quota": 1000, "window_s": 60}
        )
        return key, f"key:{record.key_id}"
    sub = str(uuid.uuid4())
    now = int(time.time())
    claims = {
        "iss": SUPABASE_ISSUER,
        "aud": SUPABASE_AUDIENCE,
        "sub": sub,
        "role": "authenticated",  # commands.list and commands.run:echo
        "aal": "aal1",
        "iat": now,
        "exp": now + 600,
        # A Supabase user writes user_metadata themself: what it says grants nothing.
        "user_metadata": {"permissions": ["admin"], "role": "service_role"},
        "scope": "admin",
    }
    return jwks_issuer.sign(claims, SUPABASE_RS_KID), f"{SUPABASE_ISSUER}|{sub}"


@pytest.mark.parametrize("kind", ["api-key", "jwt"])
def test_an_echo_only_principal_reaches_nothing_else(stack: Stack, jwks_issuer: JwksIssuer, kind: str) -> None:
    token, principal_id = echo_only_principal(stack, kind, jwks_issuer)
    client = stack.client(token)
    marker = f"esc-{uuid.uuid4().hex[:8]}"
    state_key = f"{marker}.target"
    seeded = stack.admin.put(f"/v1/state/{state_key}", json={"v": 1}, headers={"If-None-Match": "*"})
    assert seeded.status_code == 201, seeded.text
    other_execution = stack.admin.post("/v1/commands/echo", json={"message": "admin's"}).json()["execution_id"]
    other_before = execution_item(stack, other_execution)
    state_before = state_versions(stack, state_key)
    commands = sorted(c["name"] for c in stack.admin.get("/v1/commands").json()["commands"])
    params = {"name": None, "execution_id": other_execution, "key": state_key, "key_id": "0" * 16}
    body: dict[str, Any] = {
        "name": marker,
        "permissions": ["admin"],
        "principal_id": principal_id,
        "key": state_key,
        "version": 1,
        "patch": {"v": 2},
        "v": 2,
    }

    answers: dict[str, int] = {}
    for method, template in routes():
        if template == "/v1/commands/{name}":
            continue
        path = template.format(**params)
        response = client.request(method, path, json=body, headers={"If-Match": "*"})
        if kind == "jwt" and (method, template) == ("GET", "/v1/commands"):
            # role=authenticated also maps to commands.list: it lists what the principal may run.
            assert [c["name"] for c in response.json()["commands"]] == ["echo"], response.text
            continue
        assert response.status_code in (403, 404), f"{method} {path}: {response.status_code} {response.text}"
        assert_problem(
            response, response.status_code, "FORBIDDEN" if response.status_code == 403 else response.json()["code"]
        )
        answers[f"{method} {template}"] = response.status_code
    # Every command sync and async for the key (refused before anything is queued); the JWT
    # principal goes through the same check, so a sample of the commands is enough for it.
    sample = commands if kind == "api-key" else ["http.request", "state.merge", "aws.sqs.send"]
    for name in sample:
        if name == "echo":
            continue
        for prefer in ({}, {"Prefer": "respond-async"}) if kind == "api-key" else ({},):
            response = client.post(f"/v1/commands/{name}", json={"key": state_key}, headers=prefer)
            assert_problem(response, 403, "FORBIDDEN")

    # Reading or cancelling another principal's execution is "not found", not "forbidden".
    assert answers["GET /v1/executions/{execution_id}"] == 404
    assert answers["POST /v1/executions/{execution_id}/cancel"] == 404
    assert all(status == 403 for route, status in answers.items() if "/executions/" not in route), answers
    assert len(commands) > 10 and len(answers) >= 15
    # Nothing written anywhere.
    assert executions_of(stack, principal_id) == []
    assert execution_item(stack, other_execution) == other_before
    assert state_versions(stack, state_key) == state_before
    assert stack.admin.get(f"/v1/state/{state_key}").json() == {"v": 1}
    assert keys_named(stack, marker) == 0
    # And the one thing it may do, it can.
    ran = client.post("/v1/commands/echo", json={"message": "allowed"})
    assert ran.status_code == 200, ran.text
    assert executions_of(stack, principal_id) == [ran.json()["execution_id"]]


def test_a_callback_cannot_carry_a_run_to_a_refused_destination(stack: Stack) -> None:
    key, record = stack.key_store().create(
        f"callback-{uuid.uuid4().hex[:6]}", ["commands.run:echo"], {"quota": 1000, "window_s": 60}
    )
    client = stack.client(key)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/hook", "http://10.1.2.3/"):
        assert_problem(
            client.post("/v1/commands/echo", json={}, headers={"Callback-Url": url}), 400, "CALLBACK_URL_NOT_ALLOWED"
        )
    assert executions_of(stack, f"key:{record.key_id}") == []


def test_an_admin_only_route_is_refused_to_a_principal_holding_every_other_permission(stack: Stack) -> None:
    everything_but_admin = ["commands.list", "commands.run:*", "state.read:*", "state.write:*"]
    client = stack.client(stack.create_key(everything_but_admin))
    for method, path in [
        ("GET", "/v1/admin/audit"),
        ("GET", "/v1/admin/keys"),
        ("POST", "/v1/admin/keys"),
        ("GET", "/v1/admin/dlq"),
        ("POST", "/v1/admin/dlq/redrive"),
        ("POST", "/v1/admin/signing-secrets"),
        ("POST", "/v1/admin/state/recover"),
        ("GET", "/v1/admin/health"),
    ]:
        response = client.request(method, path, json={"name": "x", "permissions": ["admin"]})
        assert_problem(response, 403, "FORBIDDEN")
    # Admin permission cannot be smuggled into a state key or a command either.
    assert_problem(client.put("/v1/state/system.command-stats", json={}), 403, "FORBIDDEN")
