"""Throttling inside a state transaction is retried (bounded, jittered), then a 503 - never a conflict."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from cmdgate.state.errors import StateThrottled
from cmdgate.state.store import COMMIT_RETRY, StateStore, WriteConflict, cancellation_reasons


def cancelled(*codes: str, modelled: bool = True) -> ClientError:
    response: dict[str, Any] = {
        "Error": {
            "Code": "TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons [{', '.join(codes)}]",
        }
    }
    if modelled:
        response["CancellationReasons"] = [{"Code": code} for code in codes]
    return ClientError(response, "TransactWriteItems")


class FakeDynamoDB:
    """transact_write_items raises the queued errors in turn, then succeeds."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {}


def store_of(client: FakeDynamoDB, sleeps: list[float]) -> StateStore:
    return StateStore(client, "t", clock=lambda: 1_800_000_000.0, sleep=sleeps.append, rand=lambda: 0.5)


@pytest.mark.parametrize(
    "reasons",
    [
        ("ThrottlingError", "None"),
        ("None", "ProvisionedThroughputExceeded"),
        ("TransactionConflict", "None"),
        ("RequestLimitExceeded",),
    ],
)
def test_a_throttled_commit_is_retried_with_jitter(reasons: tuple[str, ...]) -> None:
    client, sleeps = FakeDynamoDB(cancelled(*reasons)), list[float]()
    register = store_of(client, sleeps).commit("k", None, "1", "d")
    assert register.version == 1
    assert client.calls == 2
    assert sleeps == [0.5 * COMMIT_RETRY.base_s]  # full jitter: random() * base


def test_throttling_that_persists_is_a_503_with_retry_after() -> None:
    client, sleeps = FakeDynamoDB(*[cancelled("ThrottlingError", "None")] * 10), list[float]()
    with pytest.raises(StateThrottled) as refused:
        store_of(client, sleeps).commit("k", None, "1", "d")
    assert refused.value.status == 503
    assert refused.value.headers["Retry-After"] == "1"
    assert client.calls == COMMIT_RETRY.max_attempts
    assert len(sleeps) == COMMIT_RETRY.max_attempts - 1 and all(s <= COMMIT_RETRY.cap_s for s in sleeps)


def test_throttling_outside_a_transaction_is_a_503() -> None:
    error = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems")
    with pytest.raises(StateThrottled):
        store_of(FakeDynamoDB(error), []).commit("k", None, "1", "d")


@pytest.mark.parametrize("reasons", [("ConditionalCheckFailed", "None"), ("ConditionalCheckFailed", "ThrottlingError")])
def test_a_failed_condition_is_a_conflict_at_once(reasons: tuple[str, ...]) -> None:
    client, sleeps = FakeDynamoDB(cancelled(*reasons)), list[float]()
    with pytest.raises(WriteConflict):
        store_of(client, sleeps).commit("k", None, "1", "d")
    assert client.calls == 1 and sleeps == []


def test_reasons_are_read_from_the_message_when_not_modelled() -> None:
    assert cancellation_reasons(cancelled("None", "ThrottlingError", modelled=False)) == {"None", "ThrottlingError"}
    assert cancellation_reasons(ClientError({"Error": {"Code": "Other"}}, "Op")) == frozenset()


def test_a_real_client_cancellation_is_read_from_its_modelled_field() -> None:
    # botocore puts a modelled error's fields (CancellationReasons) at the top of error.response.
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        for _ in range(COMMIT_RETRY.max_attempts):
            stub.add_client_error(
                "transact_write_items",
                service_error_code="TransactionCanceledException",
                modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": "ThrottlingError"}]},
            )
        sleeps: list[float] = []
        store = StateStore(client, "t", sleep=sleeps.append, rand=lambda: 0.0)
        with pytest.raises(StateThrottled):
            store.commit("k", None, "1", "d")
        stub.assert_no_pending_responses()
