"""Completion callbacks: Standard Webhooks signatures, sealed rotating secrets, delivery with backoff."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest

from cmdgate.callbacks import (
    CallbackDelivery,
    CallbackPolicy,
    CallbackStore,
    CallbackUrlNotAllowed,
    RetryLater,
    SigningSecretMissing,
    SigningSecrets,
    parse_callback_url,
    sign,
)
from cmdgate.callbacks.signing import secret_bytes
from cmdgate.crypto import EnvelopeCipher
from cmdgate.executions import ExecutionStore, MessageQueue
from cmdgate.executions.model import Execution
from cmdgate.hosts import HostAllowlist

NOW = 1_700_000_000
LOOPBACK = HostAllowlist.parse("127.0.0.1")


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # From the Standard Webhooks reference libraries' tests.
    secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_signature_covers_id_timestamp_and_body() -> None:
    key = b"k" * 32
    base = sign(key, "msg_1", 1, b"{}")
    assert base != sign(key, "msg_2", 1, b"{}")
    assert base != sign(key, "msg_1", 2, b"{}")
    assert base != sign(key, "msg_1", 1, b"{ }")
    expected = base64.b64encode(hmac.new(key, b"msg_1.1.{}", hashlib.sha256).digest()).decode()
    assert base == "v1," + expected


@pytest.fixture
def control(table_like: Callable[[str], Any]) -> Any:
    return table_like("ControlTable")


@pytest.fixture
def secrets(session: boto3.session.Session, control: Any) -> SigningSecrets:
    kms = session.client("kms")
    key_id = kms.create_key(Description="callback secrets")["KeyMetadata"]["KeyId"]
    clock = {"now": float(NOW)}
    store = SigningSecrets(
        session.client("dynamodb"), control.name, lambda: EnvelopeCipher(kms, key_id), clock=lambda: clock["now"]
    )
    store.clock = clock  # type: ignore[attr-defined]
    return store


def test_rotation_keeps_two_valid_secrets_for_the_grace_period(secrets: SigningSecrets) -> None:
    assert not secrets.has_secret("key:a") and secrets.keys("key:a") == []
    first = secrets.rotate("key:a", grace_s=60)
    assert first.secret.startswith("whsec_") and first.previous_valid_until is None
    assert secrets.keys("key:a") == [secret_bytes(first.secret)]
    second = secrets.rotate("key:a", grace_s=60)
    assert second.previous_valid_until == NOW + 60
    assert secrets.keys("key:a") == [secret_bytes(second.secret), secret_bytes(first.secret)]
    third = secrets.rotate("key:a", grace_s=60)  # a third: the oldest is dropped, never three valid
    assert secrets.keys("key:a") == [secret_bytes(third.secret), secret_bytes(second.secret)]
    secrets.clock["now"] += 61  # type: ignore[attr-defined]
    assert secrets.keys("key:a") == [secret_bytes(third.secret)]
    assert secrets.keys("key:b") == []


def test_secrets_are_stored_sealed(secrets: SigningSecrets, control: Any) -> None:
    created = secrets.rotate("key:a", grace_s=0)
    item = control.get_item(Key={"pk": "whsec#key:a"})["Item"]
    stored = item["secrets_json"]
    assert created.secret.removeprefix("whsec_") not in stored
    assert base64.b64encode(secret_bytes(created.secret)).decode() not in stored
    assert json.loads(stored)[0]["envelope"]["alg"] == "AES-256-GCM"


def resolver(address: str) -> Callable[..., list[tuple[Any, ...]]]:
    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "gopher://127.0.0.1/", "http://u:p@127.0.0.1/", "http://internal.test/", "x" * 3000],
)
def test_edge_refuses_destinations_the_guard_refuses(url: str) -> None:
    with pytest.raises(CallbackUrlNotAllowed):
        parse_callback_url(url, LOOPBACK, lambda: True, resolver("10.1.2.3"))


def test_edge_needs_a_secret_and_passes_an_allowed_url() -> None:
    assert parse_callback_url(None, LOOPBACK, lambda: False) is None
    with pytest.raises(SigningSecretMissing):
        parse_callback_url("http://127.0.0.1:9/hook", LOOPBACK, lambda: False)
    assert parse_callback_url(" http://127.0.0.1:9/hook ", LOOPBACK, lambda: True) == "http://127.0.0.1:9/hook"


class Harness:
    def __init__(self, table: Any, secrets: SigningSecrets, answers: list[int | Exception]) -> None:
        self.executions = ExecutionStore(table)
        self.sent: list[dict[str, Any]] = []
        self.visibility: list[int] = []
        self.alerts: list[tuple[str, str, str]] = []
        self.requests: list[httpx.Request] = []
        self.answers = answers
        self.secrets = secrets

        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return httpx.Response(answer)

        sent = self.sent

        class Queue(MessageQueue):
            def send(self, message: dict[str, Any], delay_s: int = 0) -> str:
                sent.append(message)
                return "id"

        self.delivery = CallbackDelivery(
            CallbackStore(table),
            secrets,
            Queue(None, "fake://callbacks"),
            lambda _, delay: self.visibility.append(delay),
            httpx.Client(transport=httpx.MockTransport(handle)),
            LOOPBACK,
            lambda alert, subject_id, cause: self.alerts.append((alert, subject_id, cause)),
            CallbackPolicy(max_attempts=3, base_s=1, cap_s=10, timeout_s=1),
            clock=lambda: NOW,
            rand=lambda: 0.99,
        )

    def finished(self, execution_id: str = "e1", url: str = "http://127.0.0.1:8080/hook") -> str:
        self.executions.create(
            Execution(
                execution_id=execution_id,
                command="echo",
                principal_id="key:a",
                mode="async",
                status="succeeded",
                result={"ok": True},
                created_at="2026-01-01T00:00:00Z",
                callback_url=url,
            )
        )
        return execution_id

    def attempt(self, execution_id: str) -> str:
        try:
            return self.delivery.deliver(json.dumps({"execution_id": execution_id}), "receipt")
        except RetryLater:
            return "retrying"

    def state(self, execution_id: str) -> Any:
        record = self.executions.get(execution_id)
        assert record is not None
        return record.callback


@pytest.fixture
def make(table_like: Callable[[str], Any], secrets: SigningSecrets) -> Callable[[list[int | Exception]], Harness]:
    table = table_like("ExecutionsTable")
    secrets.rotate("key:a", grace_s=0)
    return lambda answers: Harness(table, secrets, answers)


def test_hand_over_queues_once(make: Callable[[list[int | Exception]], Harness]) -> None:
    h = make([])
    execution_id = h.finished()
    assert h.delivery.hand_over(execution_id) is True
    assert h.delivery.hand_over(execution_id) is True  # not attempted yet: a lost send is made good
    h.answers.append(204)
    assert h.attempt(execution_id) == "delivered"
    assert h.delivery.hand_over(execution_id) is False  # a redelivered event after delivery
    assert h.sent == [{"execution_id": execution_id}] * 2


def test_retries_with_backoff_until_a_2xx_with_a_stable_webhook_id(
    make: Callable[[list[int | Exception]], Harness],
) -> None:
    h = make([500, httpx.ConnectError("refused"), 200])
    execution_id = h.finished()
    h.delivery.hand_over(execution_id)
    assert h.attempt(execution_id) == "retrying"
    assert (h.state(execution_id).status, h.state(execution_id).last_error) == ("pending", "HTTP 500")
    assert h.attempt(execution_id) == "retrying"
    assert h.state(execution_id).last_error == "connection failed"
    assert h.attempt(execution_id) == "delivered"
    assert h.attempt(execution_id) == "skipped"  # a duplicate message after delivery sends nothing
    assert h.visibility == [1, 2]  # full jitter: ceil(0.99 * 1), ceil(0.99 * 2)
    assert {r.headers["webhook-id"] for r in h.requests} == {f"msg_{execution_id}"}
    assert len({r.content for r in h.requests}) == 1
    key = h.secrets.keys("key:a")[0]
    for request in h.requests:
        assert request.url.host == "127.0.0.1" and request.headers["host"] == "127.0.0.1:8080"
        timestamp = int(request.headers["webhook-timestamp"])
        assert request.headers["webhook-signature"] == sign(key, f"msg_{execution_id}", timestamp, request.content)
    body = json.loads(h.requests[0].content)
    assert body["result"] == {"ok": True} and "callback" not in body
    state = h.state(execution_id)
    assert (state.status, state.attempts) == ("delivered", 3) and state.delivered_at


def test_abandoned_after_the_bound_and_alerted_once(make: Callable[[list[int | Exception]], Harness]) -> None:
    h = make([httpx.ReadTimeout("slow")] * 3)
    execution_id = h.finished()
    h.delivery.hand_over(execution_id)
    assert [h.attempt(execution_id) for _ in range(4)] == ["retrying", "retrying", "abandoned", "skipped"]
    assert (h.state(execution_id).status, h.state(execution_id).last_error) == ("abandoned", "timeout")
    assert [(a[0], a[1]) for a in h.alerts] == [("callback_abandoned", execution_id)]


def test_a_destination_refused_at_delivery_is_abandoned_without_a_request(
    make: Callable[[list[int | Exception]], Harness],
) -> None:
    h = make([])
    execution_id = h.finished(url="http://169.254.169.254/latest")
    h.delivery.hand_over(execution_id)
    assert h.attempt(execution_id) == "abandoned"
    assert h.requests == [] and h.state(execution_id).last_error == "destination refused"


def test_a_held_attempt_is_not_doubled(make: Callable[[list[int | Exception]], Harness]) -> None:
    h = make([])
    execution_id = h.finished()
    h.delivery.hand_over(execution_id)
    store = CallbackStore(h.executions._table)
    assert store.begin_attempt(execution_id, NOW, lease_s=6) is not None  # another copy holds the lease
    assert h.attempt(execution_id) == "skipped" and h.requests == []


@pytest.mark.parametrize("body", ["", "[]", '{"execution_id": "../x"}', '{"execution_id": 5}'])
def test_malformed_messages_fail(make: Callable[[list[int | Exception]], Harness], body: str) -> None:
    with pytest.raises(ValueError):
        make([]).delivery.deliver(body, "r")


def test_the_receivers_body_is_never_read(make: Callable[[list[int | Exception]], Harness]) -> None:
    pulled: list[int] = []

    def endless() -> Iterator[bytes]:  # a drip-fed body (finite here, so a regression fails, not hangs)
        for _ in range(3):
            pulled.append(1)
            yield b"x" * 65536

    h = make([])
    h.delivery._http = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=endless())))
    execution_id = h.finished()
    h.delivery.hand_over(execution_id)
    assert h.attempt(execution_id) == "delivered"
    assert pulled == []
