"""`make invoke` against a running local stack, and what it says once the stack has stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cmdgate_local.launcher import ROOT, launch


def invoke(state_file: Path, function: str, event: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/resilience", "layers/commands", "local")),
    }
    return subprocess.run(
        [sys.executable, "-m", "cmdgate_local.invoke", function, f"events/{event}", "--state-file", str(state_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_invoke_runs_against_the_stack_and_says_at_once_when_it_is_gone(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with launch(tmp_path, admin_key="cg_invoke_test_admin_key", pool_size=1):
        ran = invoke(state_file, "ApiFunction", "api_health.json")
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["statusCode"] == 200
        assert "status 200" in ran.stderr
    gone = invoke(state_file, "ApiFunction", "api_health.json")
    assert gone.returncode == 2
    assert gone.stderr.strip().splitlines() == [
        f"no local stack is running (no {state_file}): start it with `make run`"
    ]
