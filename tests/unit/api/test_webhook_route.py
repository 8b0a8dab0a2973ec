"""POST /v1/webhooks/{source} through the api function on in-memory services (GitHub kind)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cmdgate.config import Settings
from cmdgate.webhooks.receiver import webhook_execution_id
from cmdgate.webhooks.signatures import github_signature
from tests.unit.api.conftest import SOURCE_IP, Answer, Api
from tests.unit.api.fakes import WEBHOOK_SECRET

RESOURCE = "/v1/webhooks/{source}"


def deliver(
    api: Api,
    payload: Any,
    *,
    event: str = "push",
    delivery: str = "d-1",
    source: str = "github",
    signature: str | None = "good",
    headers: dict[str, str] | None = None,
) -> Answer:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    sent = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signature == "good":
        sent["X-Hub-Signature-256"] = github_signature(WEBHOOK_SECRET.encode(), body.encode())
    elif signature is not None:
        sent["X-Hub-Signature-256"] = signature
    return api.call(
        "POST",
        f"/v1/webhooks/{source}",
        resource=RESOURCE,
        path_parameters={"source": source},
        headers={**sent, **(headers or {})},
        body=body,
        caller=None,  # no API key: the route is outside the authorizer
    )


def test_a_verified_delivery_queues_one_run_as_the_sources_principal(api: Api) -> None:
    answer = deliver(api, {"message": "deploy me"})
    assert answer.status == 202, answer.body
    body = answer.json()
    execution_id = webhook_execution_id("github", "d-1")
    assert body == {
        "execution_id": execution_id,
        "status": "queued",
        "delivery_id": "d-1",
        "event": "push",
        "outcome": "started",
    }
    assert answer.headers["location"] == f"/v1/executions/{execution_id}"
    record = api.services.execution_store.items[execution_id]
    assert (record.command, record.params, record.mode) == ("echo", {"message": "deploy me"}, "async")
    assert (record.principal_id, record.permissions) == ("webhook:github", ("commands.run:echo",))
    # What the audit trail reads off every run: who, which request, from where, under which key.
    assert (record.audit["request_id"], record.audit["source_ip"], record.audit["idempotency_key"]) == (
        "req-1",
        SOURCE_IP,
        "webhook:github:d-1",
    )
    assert (record.audit["audit_principal"], record.audit["audit_action"]) == ("webhook:github", "webhook.accepted")
    assert api.services.queue.sent == [{"execution_id": execution_id}]


def test_a_redelivery_answers_the_same_execution_and_creates_nothing(api: Api) -> None:
    first = deliver(api, {"message": "once"})
    store = api.services.execution_store
    execution_id = first.json()["execution_id"]
    store.items[execution_id] = store.items[execution_id].model_copy(update={"status": "running", "attempts": 1})
    again = deliver(api, {"message": "once"})
    assert again.status == 202
    assert again.json()["execution_id"] == execution_id
    assert again.json()["status"] == "running"
    assert list(store.items) == [execution_id]
    assert len(api.services.queue.sent) == 1  # running: its message is not sent again


def test_a_redelivery_of_a_run_not_yet_attempted_sends_its_message_again(api: Api) -> None:
    deliver(api, {"message": "once"})
    deliver(api, {"message": "once"})
    execution_id = webhook_execution_id("github", "d-1")
    assert api.services.queue.sent == [{"execution_id": execution_id}] * 2  # one record; a lost send is made good
    assert list(api.services.execution_store.items) == [execution_id]


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha256=nothex", "sha1=abc"])
def test_an_unsigned_or_mis_signed_delivery_is_401_and_runs_nothing(api: Api, signature: str | None) -> None:
    answer = deliver(api, {"message": "x"}, signature=signature)
    assert answer.status == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "WEBHOOK_SIGNATURE_INVALID"
    assert not api.services.execution_store.items and not api.services.queue.sent
    assert not api.services.deliveries.records


def test_a_delivery_signed_for_another_body_is_401(api: Api) -> None:
    good = github_signature(WEBHOOK_SECRET.encode(), b'{"message": "a"}')
    assert deliver(api, {"message": "b"}, signature=good).status == 401


def test_an_unknown_source_is_404(api: Api) -> None:
    answer = deliver(api, {"message": "x"}, source="gitlab")
    assert (answer.status, answer.json()["code"]) == (404, "WEBHOOK_SOURCE_NOT_FOUND")


def test_an_unmapped_event_is_202_and_recorded_once(api: Api) -> None:
    answer = deliver(api, {"zen": "Keep it logically awesome."}, event="ping", delivery="p-1")
    assert answer.status == 202
    assert answer.json() == {"delivery_id": "p-1", "event": "ping", "outcome": "unmapped"}
    assert "location" not in answer.headers
    assert not api.services.execution_store.items
    assert deliver(api, {"zen": "again"}, event="ping", delivery="p-1").json()["outcome"] == "unmapped"
    assert list(api.services.deliveries.records) == [("github", "p-1")]


def test_a_run_the_source_may_not_start_is_recorded_refused(api: Api) -> None:
    answer = deliver(api, {"action": "opened"}, event="issues", delivery="i-1")
    assert answer.status == 202
    assert answer.json() == {"delivery_id": "i-1", "event": "issues", "outcome": "refused", "code": "FORBIDDEN"}
    assert not api.services.execution_store.items and not api.services.queue.sent


def test_params_the_command_refuses_are_recorded_refused(api: Api) -> None:
    answer = deliver(api, {"message": 42}, delivery="v-1")
    assert (answer.status, answer.json()["code"]) == (202, "VALIDATION_FAILED")
    missing = deliver(api, {"no_message": True}, delivery="v-2")
    assert missing.json()["code"] == "WEBHOOK_PARAMS_UNRESOLVED"
    assert not api.services.execution_store.items


def test_a_body_over_the_json_routes_limit_is_accepted(api: Api) -> None:
    big = {"message": "m", "padding": "x" * (200 * 1024)}  # GitHub payloads reach megabytes
    assert deliver(api, big).status == 202


def test_a_body_over_the_webhook_limit_is_413_before_anything_is_read(api: Api) -> None:
    api.services.settings = Settings(webhook_max_body_bytes=1000)
    answer = deliver(api, {"message": "m", "padding": "x" * 1000})
    assert (answer.status, answer.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    ("payload", "headers", "status", "code"),
    [
        ("[1, 2]", {}, 400, "WEBHOOK_DELIVERY_INVALID"),
        ('{"a": 1, "a": 2}', {}, 400, "INVALID_JSON"),
        ("payload=%7B%7D", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ('{"message": "m"}', {"X-GitHub-Delivery": ""}, 400, "WEBHOOK_DELIVERY_INVALID"),
        ('{"message": "m"}', {"X-GitHub-Delivery": "has space"}, 400, "WEBHOOK_DELIVERY_INVALID"),
        ('{"message": "m"}', {"X-GitHub-Event": ""}, 400, "WEBHOOK_DELIVERY_INVALID"),
    ],
)
def test_a_signed_delivery_without_what_a_delivery_needs_is_a_4xx(
    api: Api, payload: str, headers: dict[str, str], status: int, code: str
) -> None:
    answer = deliver(api, payload, headers=headers)
    assert (answer.status, answer.json()["code"]) == (status, code)
    assert not api.services.execution_store.items


def test_the_source_has_its_own_rate_limit(api: Api) -> None:
    answers = [deliver(api, {"message": "m"}, delivery=f"r-{i}") for i in range(6)]  # quota 5 per 60 s
    assert [a.status for a in answers] == [202] * 5 + [429]
    assert answers[-1].json()["code"] == "RATE_LIMITED"
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert len(api.services.execution_store.items) == 5


def test_unreadable_secrets_are_503_and_run_nothing(api: Api) -> None:
    def unavailable() -> dict[str, Any]:
        raise RuntimeError("AccessDenied for arn:...:secret:webhooks")

    api.services.webhooks._secrets = unavailable
    answer = deliver(api, {"message": "m"})
    assert (answer.status, answer.json()["code"]) == (503, "DEPENDENCY_UNAVAILABLE")
    api.services.webhook_secrets = {}
    api.services.webhooks._secrets = lambda: api.services.webhook_secrets
    assert deliver(api, {"message": "m"}).status == 503
    assert not api.services.execution_store.items


def test_an_unsigned_body_is_401_before_its_content_type_or_json_is_looked_at(api: Api) -> None:
    # The JSON routes' body gate would answer 415 / 400 first; the webhook route reads nothing unsigned.
    form = deliver(api, "payload=%7B%7D", signature=None, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (form.status, form.json()["code"]) == (401, "WEBHOOK_SIGNATURE_INVALID")
    broken = deliver(api, '{"a": 1, "a": 2', signature=None)
    assert (broken.status, broken.json()["code"]) == (401, "WEBHOOK_SIGNATURE_INVALID")
