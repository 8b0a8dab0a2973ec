"""Inbound webhooks against the local stack: GitHub, Stripe and Standard Webhooks deliveries, no API key.

The stack provisions the sources of local/cmdgate_local/webhooks.json (each event starts the testing
pack's `count` on a counter the payload names) and new random signing secrets in a moto secret, read
here the way the api function reads them. A counter that moved once proves a run ran once.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import httpx
import pytest

from cmdgate.callbacks.signing import secret_bytes, signature_header
from cmdgate.webhooks.receiver import webhook_execution_id
from cmdgate.webhooks.signatures import github_signature, stripe_signature
from tests.integration.conftest import Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


@cache
def _secrets(arn: str, moto_url: str) -> dict[str, str]:
    import boto3

    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("secretsmanager", endpoint_url=moto_url)
    return dict(json.loads(client.get_secret_value(SecretId=arn)["SecretString"]))


def secret_of(stack: Stack, source: str) -> str:
    return _secrets(stack.state["parameters"]["WebhookSecretsArn"], stack.state["moto_url"])[source]


def github(secret: str, delivery_id: str, counter: str, *, event: str = "push") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": "refs/heads/main", "counter": counter}).encode()
    return body, {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": github_signature(secret.encode(), body),
    }


def stripe(secret: str, delivery_id: str, counter: str, *, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": delivery_id, "type": "invoice.paid", "data": {"object": {"counter": counter}}}).encode()
    t = int(time.time()) if at is None else at
    return body, {"Stripe-Signature": f"t={t},v1={stripe_signature(secret, t, body)}"}


def standard(secret: str, delivery_id: str, counter: str, *, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "count.requested", "data": {"counter": counter}}).encode()
    t = int(time.time()) if at is None else at
    return body, {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(t),
        "webhook-signature": signature_header([secret_bytes(secret)], delivery_id, t, body),
    }


SIGNERS: dict[str, Callable[..., tuple[bytes, dict[str, str]]]] = {
    "github": github,
    "stripe": stripe,
    "standard": standard,
}
SIGNATURE_HEADER = {"github": "X-Hub-Signature-256", "stripe": "Stripe-Signature", "standard": "webhook-signature"}


def post(stack: Stack, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with stack.client() as client:  # no Authorization header at all
        return client.post(
            f"/v1/webhooks/{source}", content=body, headers={"Content-Type": "application/json", **headers}
        )


def counter_value(stack: Stack, counter: str) -> int:
    item = (
        stack.aws("dynamodb")
        .get_item(TableName=stack.resource("ControlTable"), Key={"pk": {"S": f"count#{counter}"}}, ConsistentRead=True)
        .get("Item")
    )
    return int(item["executions"]["N"]) if item else 0


def execution_item(stack: Stack, execution_id: str) -> dict[str, Any] | None:
    item = (
        stack.aws("dynamodb")
        .get_item(
            TableName=stack.resource("ExecutionsTable"),
            Key={"execution_id": {"S": execution_id}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return {k: next(iter(v.values())) for k, v in item.items()} if item else None


def finished(stack: Stack, execution_id: str) -> dict[str, Any]:
    """The run's record once it ended (read from the table: this file makes no authenticated call)."""
    record = wait_for(
        lambda: (item := execution_item(stack, execution_id)) and item["status"] not in ("queued", "running") and item,
        timeout_s=60,
    )
    assert record["status"] == "succeeded", record
    return {**record, "result": json.loads(record["result_json"])}


@pytest.mark.parametrize("source", ["github", "stripe", "standard"])
def test_a_verified_delivery_runs_once_and_a_redelivery_gets_the_same_execution(stack: Stack, source: str) -> None:
    delivery_id, counter = f"{source}-{uuid.uuid4().hex}", f"wh.{uuid.uuid4().hex[:12]}"
    body, headers = SIGNERS[source](secret_of(stack, source), delivery_id, counter)
    first = post(stack, source, body, headers)
    assert first.status_code == 202, first.text
    accepted = first.json()
    execution_id = accepted["execution_id"]
    assert execution_id == webhook_execution_id(source, delivery_id)
    assert (accepted["outcome"], accepted["delivery_id"]) == ("started", delivery_id)
    assert first.headers["location"] == f"/v1/executions/{execution_id}"
    assert finished(stack, execution_id)["result"] == {"executions": 1}
    # The sender retries (Stripe and Standard Webhooks sign each attempt anew, with a new timestamp).
    body, headers = SIGNERS[source](secret_of(stack, source), delivery_id, counter)
    again = post(stack, source, body, headers)
    assert again.status_code == 202, again.text
    assert (again.json()["execution_id"], again.json()["status"]) == (execution_id, "succeeded")
    assert counter_value(stack, counter) == 1
    record = execution_item(stack, execution_id)
    assert record is not None
    # What the audit trail reads off the run: the source's principal, the first request's id, its IP.
    assert record["principal_id"] == f"webhook:{source}"
    assert record["request_id"] == first.headers["x-request-id"]
    assert record["source_ip"] == "127.0.0.1"
    assert record["idempotency_key"] == f"webhook:{source}:{delivery_id}"
    assert int(record["attempts"]) == 1


@pytest.mark.parametrize("source", ["github", "stripe", "standard"])
@pytest.mark.parametrize("signature", ["missing", "wrong"])
def test_an_unsigned_or_mis_signed_delivery_is_401_and_runs_nothing(stack: Stack, source: str, signature: str) -> None:
    delivery_id, counter = f"{source}-{uuid.uuid4().hex}", f"wh.{uuid.uuid4().hex[:12]}"
    secret = "whsec_" + base64.b64encode(b"w" * 32).decode() if signature == "wrong" else secret_of(stack, source)
    body, headers = SIGNERS[source](secret, delivery_id, counter)
    if signature == "missing":
        headers.pop(SIGNATURE_HEADER[source])
    assert_problem(post(stack, source, body, headers), 401, "WEBHOOK_SIGNATURE_INVALID")
    assert execution_item(stack, webhook_execution_id(source, delivery_id)) is None
    assert counter_value(stack, counter) == 0


@pytest.mark.parametrize("source", ["stripe", "standard"])
def test_a_stale_delivery_is_400_and_runs_nothing(stack: Stack, source: str) -> None:
    delivery_id, counter = f"{source}-{uuid.uuid4().hex}", f"wh.{uuid.uuid4().hex[:12]}"
    body, headers = SIGNERS[source](secret_of(stack, source), delivery_id, counter, at=int(time.time()) - 301)
    assert_problem(post(stack, source, body, headers), 400, "WEBHOOK_STALE")
    assert execution_item(stack, webhook_execution_id(source, delivery_id)) is None


def test_concurrent_copies_of_one_delivery_start_one_run(stack: Stack) -> None:
    delivery_id, counter = f"github-{uuid.uuid4().hex}", f"wh.{uuid.uuid4().hex[:12]}"
    body, headers = github(secret_of(stack, "github"), delivery_id, counter)
    with ThreadPoolExecutor(max_workers=3) as pool:  # one per api execution environment of the test stack
        answers = list(pool.map(lambda _: post(stack, "github", body, headers), range(3)))
    assert [a.status_code for a in answers] == [202] * 3, [a.text for a in answers]
    assert {a.json()["execution_id"] for a in answers} == {webhook_execution_id("github", delivery_id)}
    assert finished(stack, webhook_execution_id("github", delivery_id))["result"] == {"executions": 1}
    assert counter_value(stack, counter) == 1


def test_an_unmapped_event_is_202_and_recorded(stack: Stack) -> None:
    delivery_id = f"ping-{uuid.uuid4().hex}"
    body, headers = github(secret_of(stack, "github"), delivery_id, "unused", event="ping")
    answer = post(stack, "github", body, headers)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"delivery_id": delivery_id, "event": "ping", "outcome": "unmapped"}
    item = stack.aws("dynamodb").get_item(
        TableName=stack.resource("ControlTable"),
        Key={"pk": {"S": f"webhook#github#{delivery_id}"}},
        ConsistentRead=True,
    )["Item"]
    assert (item["outcome"]["S"], item["event"]["S"]) == ("unmapped", "ping")
    assert item["request_id"]["S"] == answer.headers["x-request-id"]
    assert execution_item(stack, webhook_execution_id("github", delivery_id)) is None


def test_a_megabyte_payload_is_accepted_and_one_over_lambdas_limit_is_413(stack: Stack) -> None:
    secret, counter = secret_of(stack, "github"), f"wh.{uuid.uuid4().hex[:12]}"
    body = json.dumps({"counter": counter, "commits": ["x" * 1000] * 1000}).encode()  # over the JSON routes' 64 KiB
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": uuid.uuid4().hex}
    answer = post(stack, "github", body, {**headers, "X-Hub-Signature-256": github_signature(secret.encode(), body)})
    assert answer.status_code == 202, answer.text
    huge = b'{"pad": "' + b"x" * (7 * 1024 * 1024) + b'"}'  # what GitHub may send (up to 25 MB), Lambda cannot take
    assert_problem(post(stack, "github", huge, headers), 413, "PAYLOAD_TOO_LARGE")


def test_an_unknown_source_is_404(stack: Stack) -> None:
    assert_problem(post(stack, "gitlab", b"{}", {}), 404, "WEBHOOK_SOURCE_NOT_FOUND")
