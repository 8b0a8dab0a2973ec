"""The chaos drill's faults, small, on the shared stack: `make chaos` (bench/chaos.py) runs them at size.

Each scenario injects its fault while clients write, ends it, and checks that every error answer was
problem+json (503/429 with Retry-After), that no acknowledged write was lost, that no effect was applied
twice, and that the stack recovered within two minutes. The AWS faults run one at a time (the fault proxy
hits every function); the others wait out leases and timeouts, so they run side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
        running.close()


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


def test_the_other_faults_side_by_side_lose_nothing_and_apply_nothing_twice(stack: Stack) -> None:
    """Gist API faults (one after another: the Gist API has one fault at a time), a killed worker runtime, a
    paused lease holder, duplicate deliveries and a killed healer, each with its own clients, side by side."""

    def run(scenario: Callable[[Chaos], list[Row]]) -> list[Row]:
        running = drill(stack)
        try:
            return scenario(running)
        finally:
            running.close()

    scenarios: list[Callable[[Chaos], list[Row]]] = [
        lambda c: c.gist_faults(),
        # One after the other: both take a worker environment out (paused, killed), and with both out
        # at once on this stack (3 environments, MaxReceiveCount 2) a redelivery could find no worker
        # free and burn its receives (a fresh-clone run left the killed one unsettled after 120 s).
        lambda c: [c.lease_paused(), c.runtime_killed()],
        lambda c: [c.duplicate_delivery(), c.healer_killed()],
    ]
    with ThreadPoolExecutor(len(scenarios)) as pool:
        jobs = [pool.submit(run, scenario) for scenario in scenarios]
        rows = [row for job in jobs for row in job.result()]
    assert {row.fault for row in rows} == {
        "gist-5xx",
        "gist-timeout",
        "gist-429",
        "gist-403-secondary",
        "runtime-killed",
        "lease-paused",
        "duplicate-delivery",
        "healer-killed",
    }
    assert_sound(rows)
