"""A rebuild under a running local stack changes nothing: it runs from its own copy of the build."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import httpx

from cmdgate_local.launcher import ROOT, launch

ADMIN_KEY = "cg_snapshot_test_admin_key"


def own_root(tmp_path: Path) -> Path:
    """A root of our own (template, venvs, a copy of the build), so other worktrees' builds are never touched."""
    root = tmp_path / "root"
    root.mkdir()
    for name in ("template.yaml", ".venv-runtime", ".venv-sam"):
        (root / name).symlink_to((ROOT / name).resolve())
    shutil.copytree(ROOT / ".aws-sam" / "build", root / ".aws-sam" / "build", symlinks=True)
    return root


def test_a_rebuild_while_the_stack_runs_leaves_auth_and_commands_working(tmp_path: Path) -> None:
    root = own_root(tmp_path)
    workdir = tmp_path / "stack"
    with launch(workdir, admin_key=ADMIN_KEY, root=root, pool_size=1) as running:
        state_file = workdir / "state.json"
        # It holds the admin key.
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        snapshot = Path(running.state["build_dir"])
        assert snapshot.parent == workdir
        assert (snapshot / "AuthorizerFunction").is_dir()
        # What `sam build` does to the build folder: it goes, and comes back with other content.
        build = root / ".aws-sam" / "build"
        shutil.rmtree(build)
        build.mkdir()
        (build / "template.yaml").write_text("Resources: {}\n")
        with httpx.Client(base_url=running.url, timeout=60) as client:
            bad = client.get("/v1/commands", headers={"Authorization": "Bearer cg_not_a_key"})
            assert bad.status_code == 401, bad.text
            good = client.get("/v1/commands", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert good.status_code == 200, good.text
            assert good.json()
    assert not snapshot.exists()
    assert not state_file.exists()
