"""`python coverage_bootstrap.py -m awslambdaric <handler>`: the runtime under the emulator, coverage saved at SIGTERM.

The execution environments start this before `-m awslambdaric <handler>` when the test run
measures coverage (docs/coverage.md). Coverage itself is already running: its .pth file in the
runtime venv starts it from COVERAGE_PROCESS_START. What this adds is saving the data when the
environment is stopped. Between invocations the runtime's main thread waits inside awslambdaric's
native client, so a Python SIGTERM handler (coverage's `sigterm = true`) never runs there; instead
SIGTERM is blocked in every thread and one thread waits for it, saves and exits.

It runs with the runtime's python, so it imports nothing but the standard library and coverage,
and it gives awslambdaric the import path `python -m` would (the working directory first).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
from typing import Any


def _save_on_sigterm(coverage: Any) -> None:
    signal.sigwait({signal.SIGTERM})
    try:
        coverage.save()
    finally:
        os._exit(0)


def main(argv: list[str]) -> None:
    """Arm the SIGTERM saver, then run `-m MODULE ARGS...` as `python -m MODULE ARGS...` does."""
    if len(argv) < 2 or argv[0] != "-m":
        raise SystemExit("usage: coverage_bootstrap.py -m MODULE [ARGS...]")
    module = argv[1]
    sys.argv = [sys.argv[0], *argv[2:]]  # run_module puts the module's path first, as -m does
    sys.path[0] = os.getcwd()  # `python -m` puts the working directory first, not this file's folder
    try:
        import coverage
    except ImportError:  # not measured after all: run the module as it is
        current = None
    else:
        current = coverage.Coverage.current()
    if current is not None:
        # Blocked before the thread starts, so every thread (the function's own too) inherits it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_save_on_sigterm, args=(current,), name="coverage-save", daemon=True).start()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
