"""Dependency checks with timeouts, folded into healthy / degraded / unhealthy."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["healthy", "degraded", "unhealthy"]


@dataclass(frozen=True)
class Check:
    """One dependency probe; a failing critical check makes the whole service unhealthy.

    A probe may return figures (queue depths, ages) shown in the detailed view; it fails by raising.
    """

    name: str
    probe: Callable[[], Mapping[str, Any] | None]
    critical: bool = True
    informational: bool = False  # only reports figures: its failure (or timeout) changes no status


@dataclass(frozen=True)
class CheckResult:
    """How one probe went."""

    name: str
    ok: bool
    latency_ms: float
    critical: bool
    error_class: str | None = None
    details: Mapping[str, Any] | None = None
    informational: bool = False


def run_checks(checks: list[Check], timeout_s: float) -> list[CheckResult]:
    """Run every probe concurrently, each bounded by `timeout_s`."""
    if not checks:
        return []
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health")
    started = time.monotonic()
    futures = {check.name: pool.submit(_timed, check) for check in checks}
    results = []
    for check in checks:
        remaining = max(0.0, timeout_s - (time.monotonic() - started))
        try:
            results.append(futures[check.name].result(timeout=remaining))
        except FutureTimeout:
            results.append(
                CheckResult(
                    check.name, False, timeout_s * 1000, check.critical, "Timeout", informational=check.informational
                )
            )
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def _timed(check: Check) -> CheckResult:
    started = time.monotonic()
    try:
        details = check.probe()
    except Exception as exc:  # noqa: BLE001 - a probe's failure is its result
        return CheckResult(
            check.name,
            False,
            _ms_since(started),
            check.critical,
            type(exc).__name__,
            getattr(exc, "details", None),
            check.informational,
        )
    return CheckResult(check.name, True, _ms_since(started), check.critical, details=details)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def overall_status(results: list[CheckResult]) -> Status:
    """unhealthy if a critical check fails, degraded if another fails, else healthy."""
    if any(not r.ok and r.critical for r in results):
        return "unhealthy"
    if any(not r.ok and not r.informational for r in results):
        return "degraded"
    return "healthy"


def health_report(results: list[CheckResult], *, detailed: bool) -> dict[str, Any]:
    """The `/v1/health` body; error classes and figures only in the detailed (admin) view."""
    checks: dict[str, Any] = {}
    for r in results:
        entry: dict[str, Any] = {"status": "ok" if r.ok else "failing", "latency_ms": r.latency_ms}
        if detailed and r.details:
            entry.update({k: v for k, v in r.details.items() if k not in ("status", "latency_ms")})
        if detailed and r.error_class:
            entry["error_class"] = r.error_class
        checks[r.name] = entry
    return {"status": overall_status(results), "checks": checks}


class CheckFailed(Exception):
    """A probe that reached its dependency and found it wanting; `details` still reach the detailed view."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details
