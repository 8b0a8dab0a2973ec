"""Retries that back off, with the template's own timers (visibility timeout 180 s, MaxReceiveCount 3):
a transient failure is retried within seconds, and one that keeps failing is dead-lettered within a minute."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Stack, running_stack, wait_for
from tests.integration.test_execution_lifecycle import ASYNC, ended, epoch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_timers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with the template's own visibility timeout (180 s) and MaxReceiveCount (3)."""
    with running_stack(
        tmp_path_factory.mktemp("default-timers"), ("WorkerVisibilityTimeoutS=180", "MaxReceiveCount=3")
    ) as running:
        yield running


def test_with_default_timers_a_transient_failure_is_retried_within_seconds(default_timers: Stack) -> None:
    started = time.monotonic()
    queued = default_timers.admin.post("/v1/commands/fail", json={"mode": "transient", "times": 1}, headers=ASYNC)
    done = ended(default_timers, queued.json()["execution_id"], "succeeded", timeout_s=30)
    took_s = time.monotonic() - started
    assert done["attempts"] == 2
    assert [e["code"] for e in done["attempt_errors"]] == ["COMMAND_TRANSIENT_FAILURE"]
    # From the first attempt's failure to the second attempt's success (cold starts excluded).
    retried_s = epoch(done["finished_at"]) - epoch(done["attempt_errors"][0]["at"])
    print(f"\nretried: {retried_s:.1f} s from the failure to the retry's success ({took_s:.1f} s from the POST)")
    assert retried_s < 10, f"retried after {retried_s:.1f} s (the visibility timeout is 180 s)"


def test_with_default_timers_exhausted_retries_are_dead_lettered_within_a_minute(default_timers: Stack) -> None:
    started = time.monotonic()
    queued = default_timers.admin.post("/v1/commands/fail", json={"mode": "transient"}, headers=ASYNC)
    execution_id = queued.json()["execution_id"]
    done = ended(default_timers, execution_id, "dead_lettered", timeout_s=60)
    took_s = time.monotonic() - started
    assert done["attempts"] == 3
    assert [e["attempt"] for e in done["attempt_errors"]] == [1, 2, 3]
    sqs, dlq = default_timers.aws("sqs"), default_timers.resource("ExecutionsDLQ")

    def in_dlq() -> bool:
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return any(json.loads(m["Body"]).get("execution_id") == execution_id for m in messages)

    wait_for(in_dlq, timeout_s=60 - took_s)
    assert time.monotonic() - started < 60
    print(f"\ndead-lettered after {took_s:.1f} s, in the DLQ after {time.monotonic() - started:.1f} s")
