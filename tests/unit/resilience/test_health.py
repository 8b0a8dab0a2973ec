"""Health checks: bounded by a timeout, folded into one status, error classes for admins only."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from cmdgate.health import Check, CheckResult, health_report, overall_status, run_checks


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # free the abandoned probe thread


def ok() -> None:
    return None


def test_a_blocked_probe_times_out_within_the_timeout(release: threading.Event) -> None:
    entered = threading.Event()

    def blocked() -> None:
        entered.set()
        release.wait(10)  # bounded: a regression fails instead of hanging

    started = time.monotonic()
    results = run_checks([Check("dynamodb", blocked), Check("sqs", ok, critical=False)], timeout_s=0.2)
    elapsed = time.monotonic() - started
    assert entered.is_set()
    assert elapsed < 5.0, "run_checks waited for the blocked probe"
    assert [r.name for r in results] == ["dynamodb", "sqs"]
    slow, fast = results
    assert slow == CheckResult("dynamodb", False, 200.0, True, "Timeout")
    assert fast.ok
    assert fast.error_class is None
    assert overall_status(results) == "unhealthy"


def test_the_timeout_is_shared_not_per_check(release: threading.Event) -> None:
    def blocked() -> None:
        release.wait(10)

    started = time.monotonic()
    results = run_checks([Check(f"c{i}", blocked) for i in range(5)], timeout_s=0.2)
    assert time.monotonic() - started < 5.0
    assert all(r.error_class == "Timeout" for r in results)


def test_a_failing_probe_reports_its_error_class() -> None:
    def broken() -> None:
        raise ConnectionRefusedError("host db.internal:5432 refused, password=hunter2")

    (result,) = run_checks([Check("dynamodb", broken)], timeout_s=5)
    assert (result.ok, result.error_class, result.critical) == (False, "ConnectionRefusedError", True)
    assert result.latency_ms >= 0


def test_no_checks() -> None:
    assert run_checks([], timeout_s=1) == []


def result(name: str, ok: bool, critical: bool = True, error_class: str | None = None) -> CheckResult:
    return CheckResult(name, ok, 1.5, critical, error_class)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], "healthy"),
        ([result("a", True), result("b", True, critical=False)], "healthy"),
        ([result("a", True), result("b", False, critical=False)], "degraded"),
        ([result("a", False), result("b", True, critical=False)], "unhealthy"),
        ([result("a", False), result("b", False, critical=False)], "unhealthy"),
        ([result("a", True), result("b", False)], "unhealthy"),
    ],
)
def test_overall_status(results: list[CheckResult], expected: str) -> None:
    assert overall_status(results) == expected


def test_the_public_report_hides_error_classes() -> None:
    results = [result("dynamodb", False, error_class="ThrottlingException"), result("sqs", True)]
    report = health_report(results, detailed=False)
    assert report == {
        "status": "unhealthy",
        "checks": {
            "dynamodb": {"status": "failing", "latency_ms": 1.5},
            "sqs": {"status": "ok", "latency_ms": 1.5},
        },
    }
    assert "Throttling" not in json.dumps(report)


def test_the_detailed_report_shows_error_classes_of_failing_checks_only() -> None:
    results = [result("dynamodb", False, error_class="Timeout"), result("gist", False, False, "HTTPError")]
    report = health_report(results, detailed=True)
    assert report["status"] == "unhealthy"
    assert report["checks"]["dynamodb"] == {"status": "failing", "latency_ms": 1.5, "error_class": "Timeout"}
    assert report["checks"]["gist"]["error_class"] == "HTTPError"
    assert "error_class" not in health_report([result("sqs", True)], detailed=True)["checks"]["sqs"]


def test_no_probe_message_reaches_any_report() -> None:
    def broken() -> None:
        raise RuntimeError("password=hunter2")

    results = run_checks([Check("dynamodb", broken)], timeout_s=5)
    for detailed in (False, True):
        assert "hunter2" not in json.dumps(health_report(results, detailed=detailed))
