"""Coverage of a function's runtime under the real emulator: started by COVERAGE_PROCESS_START, saved when stopped.

The emulator SIGKILLs its runtime as soon as it gets SIGTERM itself, and between invocations the
runtime's main thread waits in native code where no Python signal handler runs: the data is only
there because the environment stops the runtime first and the coverage bootstrap saves on SIGTERM.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cmdgate_local.lambda_runtime import ExecutionEnvironment, FunctionRuntime, rie_binary
from cmdgate_local.launcher import ROOT
from cmdgate_local.stack import StackConfig

HANDLER = """\
def handler(event, context):
    if event.get("branch"):
        return {"took": "branch"}
    return {"took": "default"}
"""
RCFILE = """\
[tool.coverage.run]
branch = true
parallel = true
source = ["${LAMBDA_TASK_ROOT-nothing}"]
"""


def runtime_python() -> Path:
    python = StackConfig(root=ROOT).runtime_python
    found = subprocess.run([str(python), "-c", "import coverage"], capture_output=True, check=False)
    if found.returncode != 0:
        pytest.skip(f"coverage is not installed in {python} (make setup installs requirements/coverage.txt)")
    return python


def test_a_stopped_runtime_leaves_the_lines_it_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coverage = pytest.importorskip("coverage")
    python = runtime_python()  # before COVERAGE_PROCESS_START is set: its probe is measured otherwise
    rie = rie_binary(StackConfig(root=ROOT).sam_site_packages)
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    (tmp_path / "rc.toml").write_text(RCFILE)
    data = tmp_path / "data"
    monkeypatch.setenv("COVERAGE_PROCESS_START", str(tmp_path / "rc.toml"))
    monkeypatch.setenv("COVERAGE_FILE", str(data / ".coverage"))
    runtime = FunctionRuntime(
        "CoveredFunction",
        "app.handler",
        code,
        (),
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        timeout_s=10,
        memory_mb=128,
    )
    env = ExecutionEnvironment(runtime, 0, rie, python, tmp_path)
    env.start()
    try:
        assert env.invoke(b'{"branch": true}').json() == {"took": "branch"}
    finally:
        env.stop()

    files = list(data.glob(".coverage.*"))
    assert len(files) == 1, f"one runtime, one data file: {files}"
    measured = coverage.CoverageData(basename=str(files[0]))
    measured.read()
    (app,) = [name for name in measured.measured_files() if name.endswith("app.py")]
    assert measured.lines(app) is not None
    assert set(measured.lines(app)) >= {2, 3}
    assert 4 not in set(measured.lines(app))
