"""audit.coverage_report: figures per package from coverage's JSON, the doc's generated part, the threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit import coverage_report
from audit.coverage_report import (
    BEGIN,
    END,
    Figures,
    module_figures,
    package_figures,
    render,
    replace_generated,
    total_of,
)

ROOT = Path("/repo")


def entry(statements: int, covered: int, branches: int = 0, covered_branches: int = 0) -> dict[str, Any]:
    return {
        "summary": {
            "num_statements": statements,
            "covered_lines": covered,
            "num_branches": branches,
            "covered_branches": covered_branches,
        }
    }


REPORT = {
    "files": {
        "/repo/layers/resilience/cmdgate/retry.py": entry(100, 90, 20, 15),
        "/repo/layers/resilience/cmdgate/body.py": entry(50, 50, 10, 10),
        "/repo/layers/commands/cmdgate_commands/aws/calls.py": entry(40, 20, 8, 2),
        "functions/api/app.py": entry(10, 10),
        # Outside the measured packages: left out.
        "/repo/local/cmdgate_local/stack.py": entry(300, 0),
        "/elsewhere/cmdgate/retry.py": entry(5, 0),
    }
}


def test_files_are_named_from_the_tree_and_only_the_measured_packages_count() -> None:
    names = [m.name for m in module_figures(REPORT, ROOT)]
    assert names == [
        "functions/api/app.py",
        "layers/commands/cmdgate_commands/aws/calls.py",
        "layers/resilience/cmdgate/body.py",
        "layers/resilience/cmdgate/retry.py",
    ]


def test_lines_and_branches_are_summed_per_package_and_in_total() -> None:
    packages = package_figures(module_figures(REPORT, ROOT))
    resilience, commands, functions = packages
    assert (resilience.statements, resilience.covered_lines, resilience.branches) == (150, 140, 30)
    assert resilience.lines_pct == pytest.approx(100 * 140 / 150)
    assert commands.branches_pct == pytest.approx(25.0)
    assert functions.branches_pct == 100.0  # no branches at all
    total = total_of(packages)
    assert (total.name, total.statements, total.covered_lines) == ("total", 200, 170)
    assert total.lines_pct == pytest.approx(85.0)
    assert total.branches_pct == pytest.approx(100 * 27 / 38)


def test_the_doc_shows_the_total_the_packages_and_the_modules_missing_most() -> None:
    text = render(module_figures(REPORT, ROOT), "2026-12-01", fail_under=80)
    assert text.startswith(BEGIN) and text.endswith(END)
    assert "**Lines: 85.0 %** (170 of 200 statements)" in text
    assert "fails under 80 % lines" in text
    assert "| `layers/commands/cmdgate_commands` | 40 | 50.0 % | 8 | 25.0 % |" in text
    worst = text.split("never run:", 1)[1]
    # The most missed statements first.
    assert worst.index("aws/calls.py") < worst.index("cmdgate/retry.py") < worst.index("cmdgate/body.py")


def test_rewriting_the_doc_replaces_only_its_generated_part() -> None:
    document = f"# Coverage\n\nintro\n\n{BEGIN}\nold figures\n{END}\n\n## How it is measured\nkept\n"
    rewritten = replace_generated(document, f"{BEGIN}\nnew figures\n{END}")
    assert rewritten == f"# Coverage\n\nintro\n\n{BEGIN}\nnew figures\n{END}\n\n## How it is measured\nkept\n"
    assert replace_generated("# Coverage\n", f"{BEGIN}\nx\n{END}") == f"# Coverage\n\n{BEGIN}\nx\n{END}\n"


def run_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_under: float) -> tuple[int, str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / ".coverage.host.pid1.x").write_bytes(b"")
    monkeypatch.setattr(coverage_report, "ROOT", ROOT)
    monkeypatch.setattr(coverage_report, "combine", lambda data_dir: REPORT)
    doc = tmp_path / "coverage.md"
    doc.write_text(f"# Coverage\n\n{BEGIN}\n{END}\n\nkept\n")
    code = coverage_report.main(["--data", str(data), "--doc", str(doc), "--fail-under", str(fail_under)])
    return code, doc.read_text()


def test_the_run_fails_under_the_threshold_and_still_writes_the_doc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = run_main(tmp_path, monkeypatch, fail_under=86)
    assert code == 1
    assert "under the threshold 86 %" in capsys.readouterr().err
    assert "**Lines: 85.0 %**" in doc and doc.endswith("kept\n")


def test_the_run_passes_at_or_above_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_main(tmp_path, monkeypatch, fail_under=85)[0] == 0


def test_no_data_files_fail_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert coverage_report.main(["--data", str(tmp_path)]) == 1
    assert "no data files" in capsys.readouterr().err


def test_figures_of_nothing_are_full() -> None:
    assert Figures("empty").lines_pct == 100.0
