"""The runtime's coverage bootstrap runs `-m MODULE ARGS...` exactly as `python -m MODULE ARGS...` would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cmdgate_local.coverage_bootstrap import main
from cmdgate_local.lambda_runtime import COVERAGE_BOOTSTRAP

PROBE = "import json, os, sys\nprint(json.dumps({'argv': sys.argv[1:], 'path0': sys.path[0], 'name': __name__}))\n"


def test_the_module_gets_its_arguments_and_the_working_directory_first_on_its_path(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    done = subprocess.run(
        [sys.executable, str(COVERAGE_BOOTSTRAP), "-m", "probe", "app.handler", "--x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"argv": ["app.handler", "--x"], "path0": str(tmp_path), "name": "__main__"}


@pytest.mark.parametrize("argv", [[], ["awslambdaric"], ["-x", "awslambdaric"]])
def test_anything_but_dash_m_module_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="usage"):
        main(argv)
