"""The local stack's copy of the build, and its private state file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cmdgate_local import build_snapshot
from cmdgate_local.stack import write_private


def fake_build(root: Path) -> Path:
    build = root / ".aws-sam" / "build"
    (build / "ApiFunction").mkdir(parents=True)
    (build / "ApiFunction" / "app.py").write_text("VERSION = 1\n")
    (build / "template.yaml").write_text("Resources: {}\n")
    return build


def test_the_copy_outlives_a_rebuild_and_goes_when_released(tmp_path: Path) -> None:
    build = fake_build(tmp_path)
    snapshot = build_snapshot.take(build, tmp_path / "state")
    assert snapshot == tmp_path / "state" / f"build-{os.getpid()}"
    # What sam build does: the build goes away and comes back with other files.
    shutil.rmtree(build)
    (build / "ApiFunction").mkdir(parents=True)
    (build / "ApiFunction" / "app.py").write_text("VERSION = 2\n")
    assert (snapshot / "ApiFunction" / "app.py").read_text() == "VERSION = 1\n"
    assert (snapshot / "template.yaml").exists()
    build_snapshot.release(snapshot)
    assert not snapshot.exists()


def test_a_missing_build_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make build"):
        build_snapshot.take(tmp_path / ".aws-sam" / "build", tmp_path / "state")


def test_copies_of_stacks_that_are_gone_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead_pid = int(finished.stdout)
    parent = tmp_path / "state"
    dead, alive = parent / f"build-{dead_pid}", parent / f"build-{os.getppid()}"
    dead.mkdir(parents=True)
    alive.mkdir()
    (parent / "logs").mkdir()
    build_snapshot.take(fake_build(tmp_path), parent)
    assert not dead.exists()
    assert alive.exists()
    assert (parent / "logs").exists()


def test_the_state_file_is_private_even_over_a_readable_one(tmp_path: Path) -> None:
    path = tmp_path / ".local-stack" / "state.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_private(path, json.dumps({"admin_key": "cg_secret"}))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"admin_key": "cg_secret"}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
