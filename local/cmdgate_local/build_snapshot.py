"""The local stack's own copy of `.aws-sam/build`, so a rebuild cannot pull code out from under it.

`sam build` (make build, make invoke, make bench) replaces `.aws-sam/build`; execution
environments started from it would lose their working directory and code mid-run. Each
stack copies the build once at start into `build-<pid>` beside its state file, runs every
function from that copy and removes it when it stops. Copies left by stacks that were
killed are removed by the next stack that starts there.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("cmdgate_local")
_PREFIX = "build-"


def take(build_dir: Path, parent: Path) -> Path:
    """Copy `build_dir` to `parent/build-<pid>` (replacing a copy of the same pid) and return it."""
    if not (build_dir / "template.yaml").exists():
        raise FileNotFoundError(f"{build_dir} is missing: run `sam build` (make build) first")
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    snapshot = parent / f"{_PREFIX}{os.getpid()}"
    shutil.rmtree(snapshot, ignore_errors=True)
    # A real copy, not hard links: a rebuild that rewrote a file in place would change a link too.
    shutil.copytree(build_dir, snapshot, symlinks=True)
    if not (snapshot / "template.yaml").exists():
        # sam build was replacing the build while it was copied.
        shutil.rmtree(snapshot, ignore_errors=True)
        raise FileNotFoundError(f"{build_dir} changed while it was copied: wait for `sam build` to finish")
    return snapshot


def release(snapshot: Path) -> None:
    """Remove a copy made by take()."""
    shutil.rmtree(snapshot, ignore_errors=True)


def remove_stale(parent: Path) -> list[Path]:
    """Remove the copies whose stack process no longer runs; returns what was removed."""
    removed = []
    for candidate in parent.glob(f"{_PREFIX}*"):
        if not is_snapshot(candidate):
            continue
        pid = int(candidate.name.removeprefix(_PREFIX))
        if pid == os.getpid() or process_alive(pid):
            continue
        log.info("removing %s, left by a stack that is gone", candidate)
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def is_snapshot(path: Path) -> bool:
    """Whether `path` is a copy made by take() (`build-<pid>`)."""
    return path.name.startswith(_PREFIX) and path.name.removeprefix(_PREFIX).isdigit()


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    return True
