"""`make invoke` against a running local stack, and what it says once the stack has stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmdgate_local import invoke
from cmdgate_local.launcher import ROOT, launch


def test_invoke_runs_against_the_stack_and_says_at_once_when_it_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_file = tmp_path / "state.json"
    argv = [
        "ApiFunction",
        str(ROOT / "events" / "api_health.json"),
        "--root",
        str(ROOT),
        "--state-file",
        str(state_file),
    ]
    with launch(tmp_path, admin_key="cg_invoke_test_admin_key", pool_size=1):
        capsys.readouterr()
        assert invoke.main(argv) == 0
        ran = capsys.readouterr()
        assert json.loads(ran.out)["statusCode"] == 200
        assert "status 200" in ran.err
    assert invoke.main(argv) == 2
    gone = capsys.readouterr()
    assert gone.err.splitlines() == [f"no local stack is running (no {state_file}): start it with `make run`"]
