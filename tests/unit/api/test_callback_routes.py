"""The api function's side of callbacks: `Callback-Url` checked at the edge, signing secrets rotated by admin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cmdgate.config import Settings
from cmdgate.hosts import HostAllowlist
from tests.unit.api.conftest import Answer, Api, principal

ALICE = principal("commands.run:echo")


def run(api: Api, headers: dict[str, str], caller: dict[str, Any] = ALICE) -> Answer:
    return api.call(
        "POST",
        "/v1/commands/echo",
        resource="/v1/commands/{name}",
        path_parameters={"name": "echo"},
        headers=headers,
        body="{}",
        caller=caller,
    )


@pytest.fixture
def loopback(api: Api) -> Api:
    api.services.settings = Settings(http_request_allowed_hosts=HostAllowlist.parse("127.0.0.1"))
    api.services.signing_secrets.principals.add("key:alice")
    return api


def test_a_run_keeps_its_checked_callback_url(loopback: Api) -> None:
    answer = run(loopback, {"Prefer": "respond-async", "Callback-Url": "http://127.0.0.1:9000/hook"})
    assert answer.status == 202, answer.body
    record = loopback.services.execution_store.get(answer.json()["execution_id"])
    assert record is not None and record.callback_url == "http://127.0.0.1:9000/hook"
    assert record.public_view()["callback"] == {
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "delivered_at": None,
    }


@pytest.mark.parametrize(
    "url", ["http://127.0.0.2/", "http://169.254.169.254/", "file:///etc/passwd", "http://[::1]/", "http://0x7f.1/"]
)
def test_a_refused_callback_url_is_400_and_nothing_runs(loopback: Api, url: str) -> None:
    answer = run(loopback, {"Callback-Url": url})
    assert (answer.status, answer.json()["code"]) == (400, "CALLBACK_URL_NOT_ALLOWED")
    assert url not in answer.body
    assert loopback.services.queue.sent == []


def test_a_caller_without_a_signing_secret_gets_409(api: Api) -> None:
    api.services.settings = Settings(http_request_allowed_hosts=HostAllowlist.parse("127.0.0.1"))
    answer = run(api, {"Callback-Url": "http://127.0.0.1/hook"})
    assert (answer.status, answer.json()["code"]) == (409, "SIGNING_SECRET_MISSING")


def rotate(api: Api, body: str, caller: dict[str, Any] | None = None) -> Answer:
    kwargs: dict[str, Any] = {"caller": caller} if caller else {}
    return api.call(
        "POST", "/v1/admin/signing-secrets", body=body, headers={"Content-Type": "application/json"}, **kwargs
    )


def test_admin_rotates_a_secret_shown_once(api: Api) -> None:
    answer = rotate(api, json.dumps({"principal_id": "key:alice", "grace_s": 60}))
    assert answer.status == 201, answer.body
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["secret"].startswith("whsec_") and answer.json()["previous_valid_until"] is None
    again = rotate(api, json.dumps({"principal_id": "key:alice", "grace_s": 60}))
    assert again.json()["previous_valid_until"] == 1_700_000_060


@pytest.mark.parametrize(
    "body",
    ['{"principal_id": ""}', '{"principal_id": "a b"}', '{"principal_id": "p", "grace_s": -1}', '{"grace_s": 5}',
     '{"principal_id": "p", "grace_s": 1e9}', '{"principal_id": ["p"]}', '{"principal_id": "p", "x": 1}'],
)  # fmt: skip
def test_hostile_rotation_bodies_are_422(api: Api, body: str) -> None:
    answer = rotate(api, body)
    assert (answer.status, answer.json()["code"]) == (422, "VALIDATION_FAILED")


def test_rotation_needs_admin(api: Api) -> None:
    answer = rotate(api, '{"principal_id": "key:alice"}', caller=ALICE)
    assert (answer.status, answer.json()["code"]) == (403, "FORBIDDEN")
