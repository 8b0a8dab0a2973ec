"""Finding the Python runtime of one execution environment, to kill or pause it in a fault test.

Each environment is an `aws-lambda-rie` process writing to its own log file, and the runtime
(`python -m awslambdaric`) is the emulator's child; only processes descending from the given stack
process are considered, so a run never touches another stack's processes.
"""

from __future__ import annotations

import os
from pathlib import Path


def parent_of(pid: int) -> int:
    """The parent pid of `pid` (from /proc; OSError when it is gone)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` is `pid` or one of its ancestors."""
    try:
        while pid > 1:
            if pid == ancestor:
                return True
            pid = parent_of(pid)
    except (OSError, ValueError, IndexError):
        return False
    return False


def runtime_pid(stack_pid: int, log: Path) -> int | None:
    """The pid of the runtime of the environment whose emulator writes to `log`, under `stack_pid`."""
    processes = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                processes[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    emulators = []
    for pid, cmdline in processes.items():
        try:
            if b"aws-lambda-rie" in cmdline and Path(os.readlink(f"/proc/{pid}/fd/1")) == log:
                emulators.append(pid)
        except OSError:
            continue
    for pid, cmdline in processes.items():
        try:
            parent = parent_of(pid)
        except (OSError, ValueError, IndexError):
            continue
        if b"awslambdaric" in cmdline and parent in emulators and descends_from(parent, stack_pid):
            return pid
    return None
