"""bench/cold_start.py: what it reads from the emulator's log, how it forms its ratios, where it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cold_start import END_MARK, FLOOR, START_MARK, cold_figures, medians, render, write_docs

LOG = """01 Dec 2026 18:38:29,226 [INFO] (rapid) INIT START(type: on-demand, phase: init)
01 Dec 2026 18:38:29,775 [INFO] (rapid) INIT REPORT(durationMs: 548.630000)
01 Dec 2026 18:38:29,775 [INFO] (rapid) INVOKE START(requestId: 7fc07c27)
01 Dec 2026 18:38:29,857 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, duration: 82.328000ms)
REPORT RequestId: 7fc07c27	Init Duration: 0.10 ms	Duration: 631.23 ms	Billed Duration: 632 ms
01 Dec 2026 18:38:34,460 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, duration: 9.0ms)
"""


def test_init_and_the_first_invocation_come_from_the_emulator_log() -> None:
    assert cold_figures(LOG) == {"init_ms": 548.63, "invoke_ms": 82.328, "total_ms": 548.63 + 82.328}


def test_a_failed_or_missing_cold_start_is_an_error_not_a_figure() -> None:
    with pytest.raises(RuntimeError, match="failed"):
        cold_figures(LOG.replace("status: success", "status: error", 1))
    with pytest.raises(RuntimeError, match="INIT REPORT"):
        cold_figures(LOG.split("\n", 2)[2].replace("INIT REPORT", "INIT"))


def test_ratios_are_to_the_floor_of_the_same_run() -> None:
    def row(total: float) -> dict[str, float]:
        return {"init_ms": total - 10, "invoke_ms": 10.0, "total_ms": total, "wall_ms": total}

    rounds = [
        {FLOOR: row(100.0), "AuthorizerFunction": row(120.0)},
        {FLOOR: row(200.0), "AuthorizerFunction": row(260.0)},
        {FLOOR: row(150.0), "AuthorizerFunction": row(150.0)},
    ]
    figures = medians(rounds)
    assert figures[FLOOR]["ratio"] == 1.0
    assert figures["AuthorizerFunction"]["total_ms"] == 150.0
    assert figures["AuthorizerFunction"]["ratio"] == 1.0  # median 150 over the floor's median 150
    assert figures["AuthorizerFunction"]["paired_ratio"] == 1.2  # median of 1.2, 1.3, 1.0


def test_write_docs_replaces_only_its_own_section(tmp_path: Path) -> None:
    results = tmp_path / "benchmarks.md"
    results.write_text(f"# Benchmarks\n\n## Other\nkept\n\n{START_MARK}\nold\n{END_MARK}\n\n## After\nkept too\n")
    write_docs(f"{START_MARK}\nnew\n{END_MARK}", results)
    assert results.read_text() == (
        f"# Benchmarks\n\n## Other\nkept\n\n{START_MARK}\nnew\n{END_MARK}\n\n## After\nkept too\n"
    )
    fresh = tmp_path / "fresh.md"
    fresh.write_text("# Benchmarks\n")
    write_docs(f"{START_MARK}\nnew\n{END_MARK}", fresh)
    assert fresh.read_text() == f"# Benchmarks\n\n{START_MARK}\nnew\n{END_MARK}\n"


def test_the_section_says_which_function_meets_the_goal() -> None:
    def row(total: float, ratio: float) -> dict[str, float]:
        return {
            "init_ms": total,
            "invoke_ms": 0.0,
            "total_ms": total,
            "wall_ms": total,
            "ratio": ratio,
            "paired_ratio": ratio,
        }

    figures = {
        "when": "2026-12-01 20:00 UTC",
        "machine": "x86_64",
        "cold_starts": 5,
        "load": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "medians": {FLOOR: row(100.0, 1.0), "AuthorizerFunction": row(120.0, 1.2), "ApiFunction": row(180.0, 1.8)},
        "front": {"cold_ms": 300.0, "warm_ms": 50.0, "floor_ms": 100.0},
        "layer": {"mib": 32.7, "budget_mib": 35, "largest": [("cryptography", 14.4)], "botocore_or_boto3": []},
        "imports": {"AuthorizerFunction": {"total_ms": 80.0, "direct": [("cmdgate.wiring", 40.0)], "self": []}},
    }
    section = render(figures)
    assert section.startswith(START_MARK) and section.endswith(END_MARK)
    assert "| authorizer | 120.0 | 1.2 | 0.0 | 120.0 | 1.2 | 1.2 | <= 1.3 met |" in section
    assert "| api | 180.0 | 1.8 | 0.0 | 180.0 | 1.8 | 1.8 | <= 1.3 missed |" in section
    assert "**300.0 ms** = 3.0x the floor's cold start" in section
    assert "32.7 MiB unzipped" in section and "cryptography 14.4 MiB" in section
    assert "- authorizer: 80.0 ms in all; cmdgate.wiring 40.0" in section
    quick = render({k: v for k, v in figures.items() if k != "imports"})  # a quick run profiles no imports
    assert "Costliest imports" not in quick and "32.7 MiB unzipped" in quick
