"""`make bench ARGS=...` reaches the benchmark; benchmarks write docs/benchmarks.md only with --write-docs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import run

ROOT = Path(__file__).resolve().parents[3]


TARGETS = [
    ("bench", "bench.suite"),
    ("bench-command", "bench.run"),
    ("bench-state", "bench.state_sync"),
    ("bench-async", "bench.async_drain"),
    ("bench-cold", "bench.cold_start"),
]


@pytest.mark.parametrize(("target", "module"), TARGETS)
def test_make_passes_args_to_the_benchmark(target: str, module: str) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -n prints the recipe without running it (nor what it depends on).
    dry = subprocess.run(
        ["make", "-n", target, "ARGS=--requests 5 --write-docs"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    runs = [line for line in dry.stdout.splitlines() if f"-m {module}" in line]
    assert runs, dry.stdout
    assert runs[-1].endswith(f"-m {module} --requests 5 --write-docs")


def test_figures_are_printed_and_docs_left_alone_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "docs" / "benchmarks.md"
    results.parent.mkdir()
    results.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    monkeypatch.setattr(run, "RESULTS", results)
    monkeypatch.setattr(run, "ROOT", tmp_path)
    section = "## Command path: sync idempotent echo\n\n| p50 | 1.0 |\n"

    run.report(section, run.SECTION, write_docs=False)
    assert "| p50 | 1.0 |" in capsys.readouterr().out
    assert results.read_text() == "# Benchmarks\n\n## Other\n\nkept\n"

    run.report(section, run.SECTION, write_docs=True)
    out = capsys.readouterr().out
    assert "| p50 | 1.0 |" in out
    assert "wrote docs/benchmarks.md" in out
    text = results.read_text()
    assert "## Other\n\nkept" in text
    assert "| p50 | 1.0 |" in text


def test_both_benchmarks_take_write_docs(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import state_sync

    for module in (run, state_sync):
        with pytest.raises(SystemExit) as exited:
            module.main(["--help"])
        assert exited.value.code == 0
        assert "--write-docs" in capsys.readouterr().out
