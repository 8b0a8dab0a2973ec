"""The chaos drill's faults, small, on the shared stack: `make chaos` (bench/chaos.py) runs them at size.

Each scenario injects its fault while clients write, ends it, and checks that every error answer was
problem+json (503/429 with Retry-After), that no acknowledged write was lost, that no effect was applied
twice, and that the stack recovered within two minutes. The faults that wait out a lease or a client
timeout (a killed runtime, a paused lease holder, a Gist API timeout) run side by side, each with its own
clients, so the file adds their longest wait once.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bench.chaos import Chaos, Row
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration
SIZE = 2
# Low enough that botocore's retries absorb most failures and a short run ends quickly; `make chaos` uses 0.5.
RATE = 0.2


def drill(stack: Stack) -> Chaos:
    return Chaos(stack.url, stack.admin_key, stack.state, stack.log_dir, size=SIZE, rate=RATE)


@pytest.fixture(scope="module")
def chaos(stack: Stack) -> Iterator[Chaos]:
    running = drill(stack)
    try:
        yield running
    finally:
        running.clear_aws_faults()
        httpx.post(f"{stack.state['gist_url']}/_admin/faults", json={"mode": "none"}).raise_for_status()
        running.clients.close()


def assert_sound(rows: list[Row]) -> None:
    for row in rows:
        print(
            f"\n{row.fault}: {row.requests} requests, {row.errors} errors {row.statuses}, {row.writes} writes, "
            f"{row.writes_lost} lost, {row.double_effects} twice, recovered in {row.recover_s} s; {row.note}"
        )
    for row in rows:
        assert not row.malformed, row.problems
        assert row.writes > 0, row
        assert (row.writes_lost, row.double_effects) == (0, 0), row
        assert row.ok, row


@pytest.mark.parametrize("fault", ["dynamodb-throughput", "dynamodb-throttling", "dynamodb-latency", "sqs-errors"])
def test_aws_faults_lose_nothing_and_apply_nothing_twice(chaos: Chaos, fault: str) -> None:
    assert_sound(chaos.scenarios()[fault]())


def test_gist_api_faults_delay_sync_and_lose_nothing(chaos: Chaos) -> None:
    rows = [row for row in chaos.gist_faults() if row.fault != "gist-timeout"]
    assert_sound(rows)


def test_duplicate_deliveries_and_a_killed_healer_apply_each_effect_once(chaos: Chaos) -> None:
    assert_sound(chaos.scenarios()["duplicate-delivery"]() + chaos.scenarios()["healer-killed"]())


def test_killed_and_paused_runtimes_and_a_gist_timeout_lose_nothing(stack: Stack, chaos: Chaos) -> None:
    none = {"mode": "none"}
    slow = [
        lambda: drill(stack).runtime_killed(),
        lambda: drill(stack).lease_paused(),
        lambda: drill(stack).gist_fault(
            "gist-timeout",
            "Gist API holds an answer past the client's 10 s timeout",
            lambda: chaos.gist_admin("faults", {"mode": "timeout", "count": 1, "delay_s": 12}),
            lambda: chaos.gist_admin("faults", none),
        ),
    ]
    with ThreadPoolExecutor(len(slow)) as pool:
        rows = [job.result() for job in [pool.submit(scenario) for scenario in slow]]
    assert_sound(rows)
