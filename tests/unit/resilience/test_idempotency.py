"""Idempotency-Key parsing, request fingerprints, and at-most-once runs on Powertools' DynamoDB layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from cmdgate.idempotency import (
    REPLAYED_HEADER,
    HttpResponse,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    IdempotentRequests,
    InvalidIdempotencyKey,
    ReleasingDynamoDBPersistenceLayer,
    parse_idempotency_key,
    request_fingerprint,
)

# -- parse_idempotency_key ------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (None, None),
        ("abc-123", "abc-123"),
        ('"abc-123"', "abc-123"),
        ("  abc-123 \t", "abc-123"),
        ('"with space"', "with space"),
        (r'"q\"uote"', 'q"uote'),
        (r'"back\\slash"', "back\\slash"),
        ("x" * 255, "x" * 255),
        ('"' + "x" * 255 + '"', "x" * 255),
        ("a", "a"),
        ("!~", "!~"),
    ],
)
def test_parse_idempotency_key_accepts(header: str | None, key: str | None) -> None:
    assert parse_idempotency_key(header) == key


def test_bare_and_structured_forms_name_the_same_key() -> None:
    assert parse_idempotency_key("8e03978e-40d5") == parse_idempotency_key('"8e03978e-40d5"')


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        '""',
        "x" * 256,
        '"' + "x" * 256 + '"',
        "two words",
        '"unterminated',
        r'"bad\escape"',
        '"a"b"',
        "caf\u00e9",
        '"caf\u00e9"',
        "tab\there",
        '"ctl\x01"',
    ],
)
def test_parse_idempotency_key_refuses(header: str) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        parse_idempotency_key(header)


# -- request_fingerprint ----------------------------------------------------------


def test_fingerprint_ignores_key_order_number_spelling_and_method_case() -> None:
    base = request_fingerprint("POST", "/commands/echo", {"a": 1, "b": {"x": [1, 2], "y": 2.0}})
    assert base == request_fingerprint("post", "/commands/echo", {"b": {"y": 2, "x": [1, 2]}, "a": 1.0})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/commands/echo", {"a": 1}),
        ("POST", "/commands/echo2", {"a": 1}),
        ("POST", "/commands/echo", {"a": 2}),
        ("POST", "/commands/echo", {"a": "1"}),
        ("POST", "/commands/echo", {"a": 1, "b": None}),
        ("POST", "/commands/echo", [{"a": 1}]),
        ("POST", "/commands/echo", None),
    ],
)
def test_fingerprint_changes_with_method_path_and_body(method: str, path: str, body: Any) -> None:
    assert request_fingerprint(method, path, body) != request_fingerprint("POST", "/commands/echo", {"a": 1})


def test_path_and_body_cannot_be_shifted_into_each_other() -> None:
    assert request_fingerprint("POST", "/a", "b") != request_fingerprint("POST", '/a\n"', 'b"')


# -- IdempotentRequests.run ----------------------------------------------------------


class Producer:
    def __init__(self, status: int = 200, fail: bool = False) -> None:
        self.runs = 0
        self.status = status
        self.fail = fail

    def __call__(self) -> HttpResponse:
        self.runs += 1
        if self.fail:
            raise RuntimeError("refused before starting")
        return {"status": self.status, "headers": {"X-Run": str(self.runs)}, "body": {"run": self.runs}}


class LambdaContextStub:
    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def requests(table_like: Callable[[str], Any], session: boto3.session.Session) -> IdempotentRequests:
    table_like("IdempotencyTable")
    layer = DynamoDBPersistenceLayer(table_name="unit-IdempotencyTable", boto3_client=session.client("dynamodb"))
    idempotent = IdempotentRequests(layer)
    idempotent.register_lambda_context(LambdaContextStub())  # type: ignore[arg-type]
    return idempotent


FP = request_fingerprint("POST", "/commands/echo", {"a": 1})


def test_first_run_produces_and_the_second_replays_the_stored_answer(requests: IdempotentRequests) -> None:
    produce = Producer(status=504)  # a command's own failure is stored like any answer
    first = requests.run("alice", "k1", FP, produce, 5)
    assert first == {"status": 504, "headers": {"X-Run": "1"}, "body": {"run": 1}}
    second = requests.run("alice", "k1", FP, produce, 5)
    assert produce.runs == 1
    assert second == {"status": 504, "headers": {"X-Run": "1", REPLAYED_HEADER: "true"}, "body": {"run": 1}}


def test_reusing_a_key_for_another_request_is_refused(requests: IdempotentRequests) -> None:
    produce = Producer()
    requests.run("alice", "k1", FP, produce, 5)
    other = request_fingerprint("POST", "/commands/echo", {"a": 2})
    with pytest.raises(IdempotencyKeyReused) as refused:
        requests.run("alice", "k1", other, produce, 5)
    assert refused.value.status == 422
    assert produce.runs == 1


def test_keys_are_scoped_by_principal(requests: IdempotentRequests) -> None:
    produce = Producer()
    assert requests.run("alice", "k1", FP, produce, 5)["body"] == {"run": 1}
    bob = requests.run("bob", "k1", FP, produce, 5)
    assert bob["body"] == {"run": 2} and REPLAYED_HEADER not in bob["headers"]
    assert requests.run("alice", "k2", FP, produce, 5)["body"] == {"run": 3}
    assert produce.runs == 3


def test_a_failed_produce_stores_nothing_so_a_retry_runs(requests: IdempotentRequests) -> None:
    failing = Producer(fail=True)
    with pytest.raises(RuntimeError):
        requests.run("alice", "k1", FP, failing, 5)
    working = Producer()
    answer = requests.run("alice", "k1", FP, working, 5)
    assert working.runs == 1 and REPLAYED_HEADER not in answer["headers"]


def test_a_request_still_running_answers_409_with_retry_after(requests: IdempotentRequests) -> None:
    seen: list[IdempotencyInProgress] = []

    def produce() -> HttpResponse:
        with pytest.raises(IdempotencyInProgress) as busy:
            requests.run("alice", "k1", FP, Producer(), 7)
        seen.append(busy.value)
        return {"status": 200, "headers": {}, "body": None}

    requests.run("alice", "k1", FP, produce, 5)
    assert [(e.status, e.headers) for e in seen] == [(409, {"Retry-After": "7"})]


# -- an answer that cannot be saved ---------------------------------------------


def _throttled(operation: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, operation)


def _refusing(layer: DynamoDBPersistenceLayer, method: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make one of the layer's DynamoDB writes (`_update_record`, `_delete_record`) fail once."""
    failed: list[str] = []
    real = getattr(layer, method)

    def once(*args: Any, **kwargs: Any) -> None:
        if not failed:
            failed.append(method)
            raise _throttled(method)
        real(*args, **kwargs)

    monkeypatch.setattr(layer, method, once)
    return failed


@pytest.fixture
def releasing(table_like: Callable[[str], Any], session: boto3.session.Session) -> ReleasingDynamoDBPersistenceLayer:
    table_like("IdempotencyTable")
    client = session.client("dynamodb")
    return ReleasingDynamoDBPersistenceLayer(table_name="unit-IdempotencyTable", boto3_client=client)


def _requests_on(layer: DynamoDBPersistenceLayer) -> IdempotentRequests:
    idempotent = IdempotentRequests(layer)
    idempotent.register_lambda_context(LambdaContextStub())  # type: ignore[arg-type]
    return idempotent


def test_an_answer_that_cannot_be_saved_releases_the_key_for_the_retry(
    releasing: ReleasingDynamoDBPersistenceLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

    requests = _requests_on(releasing)
    failed = _refusing(releasing, "_update_record", monkeypatch)
    produce = Producer()
    with pytest.raises(IdempotencyPersistenceLayerError):
        requests.run("alice", "k1", FP, produce, 5)
    assert failed == ["_update_record"]
    retried = requests.run("alice", "k1", FP, produce, 5)  # not 409 for the invocation's remaining 30 s
    assert produce.runs == 2 and REPLAYED_HEADER not in retried["headers"]
    replayed = requests.run("alice", "k1", FP, produce, 5)
    assert produce.runs == 2 and replayed["headers"][REPLAYED_HEADER] == "true"


def test_powertools_own_layer_holds_the_key_after_an_unsaved_answer(
    table_like: Callable[[str], Any], session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ReleasingDynamoDBPersistenceLayer changes: Powertools alone answers the retry 409."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

    table_like("IdempotencyTable")
    layer = DynamoDBPersistenceLayer(table_name="unit-IdempotencyTable", boto3_client=session.client("dynamodb"))
    requests = _requests_on(layer)
    _refusing(layer, "_update_record", monkeypatch)
    with pytest.raises(IdempotencyPersistenceLayerError):
        requests.run("alice", "k1", FP, Producer(), 5)
    with pytest.raises(IdempotencyInProgress):
        requests.run("alice", "k1", FP, Producer(), 5)


def _deletes_failing(times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Powertools' own DynamoDB delete (under the releasing layer's retries) throttled `times` times."""
    calls: list[int] = []
    real = DynamoDBPersistenceLayer._delete_record

    def throttled(self: DynamoDBPersistenceLayer, data_record: Any) -> None:
        calls.append(1)
        if len(calls) <= times:
            raise _throttled("DeleteItem")
        real(self, data_record)

    monkeypatch.setattr(DynamoDBPersistenceLayer, "_delete_record", throttled)
    return calls


def test_a_release_refused_twice_is_retried_so_the_retry_is_not_held(
    releasing: ReleasingDynamoDBPersistenceLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's retry quota runs out under sustained throttling; the release has retries of its own."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

    requests = _requests_on(releasing)
    _refusing(releasing, "_update_record", monkeypatch)
    deletes = _deletes_failing(2, monkeypatch)
    with pytest.raises(IdempotencyPersistenceLayerError):
        requests.run("alice", "k1", FP, Producer(), 5)
    assert len(deletes) == 3
    produce = Producer()
    requests.run("alice", "k1", FP, produce, 5)
    assert produce.runs == 1


def test_a_release_after_a_refused_run_is_retried_too(
    releasing: ReleasingDynamoDBPersistenceLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Powertools deletes the marker when the wrapped function raises: that delete is the same release."""
    requests = _requests_on(releasing)
    deletes = _deletes_failing(1, monkeypatch)
    with pytest.raises(RuntimeError):
        requests.run("alice", "k1", FP, Producer(fail=True), 5)
    assert len(deletes) == 2
    produce = Producer()
    requests.run("alice", "k1", FP, produce, 5)
    assert produce.runs == 1


def test_a_marker_neither_saved_nor_released_still_holds_the_key(
    releasing: ReleasingDynamoDBPersistenceLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case left: every write refused, the retry waits for the marker's expiry (the remaining time)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

    requests = _requests_on(releasing)
    _refusing(releasing, "_update_record", monkeypatch)
    deletes = _deletes_failing(99, monkeypatch)
    with pytest.raises(IdempotencyPersistenceLayerError):
        requests.run("alice", "k1", FP, Producer(), 5)
    assert len(deletes) == 4  # the release's attempts, then it gives up
    with pytest.raises(IdempotencyInProgress):
        requests.run("alice", "k1", FP, Producer(), 5)
