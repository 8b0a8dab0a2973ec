"""Start `python -m cmdgate_local` as a child process on free ports, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cmdgate_local.lambda_runtime import free_port
from cmdgate_local.stack import READY_LINE

ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = READY_LINE.split("{", 1)[0]
STACK_LOG = "local-stack.log"  # what the stack process printed, beside the function logs


@dataclass
class RunningStack:
    """What a started stack reported: its URL and its state file (ports, resources, admin key)."""

    url: str
    state: dict[str, Any]
    log_dir: Path


def stack_environment(environ: Mapping[str, str], env: Mapping[str, str], admin_key: str) -> dict[str, str]:
    """The stack process's environment: this one's, `env`, the repository's modules and the admin key.

    `make test` measures coverage of its own processes only; `make coverage`
    (CMDGATE_COVERAGE_RUNTIMES=1) measures the stack and the functions' runtimes too (docs/coverage.md:
    about 1.5x the time, too slow for every run), so the stack is started measured only then.
    """
    child_env = {
        **environ,
        **env,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/resilience", "layers/commands", "local")),
        "CMDGATE_BOOTSTRAP_ADMIN_KEY": admin_key,
    }
    if child_env.get("CMDGATE_COVERAGE_RUNTIMES") != "1":
        child_env.pop("COVERAGE_PROCESS_START", None)
    return child_env


@contextmanager
def launch(
    workdir: Path,
    *,
    admin_key: str,
    params: Sequence[str] = (),
    env: dict[str, str] | None = None,
    pool_size: int = 3,
    authorizer_ttl_s: float | None = None,
    startup_timeout_s: float = 120.0,
    root: Path = ROOT,
) -> Iterator[RunningStack]:
    """Run a local stack until the block ends; every child process is stopped after.

    `root` is the tree the stack reads (template.yaml, .aws-sam/build, the venvs); the code of
    the local stack itself always comes from this repository.
    """
    if not (root / ".aws-sam" / "build" / "template.yaml").exists():
        raise RuntimeError("run `make build` first (the local stack runs what sam build produced)")
    state_file, log_dir = workdir / "state.json", workdir / "logs"
    child_env = stack_environment(os.environ, env or {}, admin_key)
    command = [
        sys.executable,
        "-m",
        "cmdgate_local",
        "--root",
        str(root),
        "--port",
        str(free_port()),
        "--pool-size",
        str(pool_size),
        "--state-file",
        str(state_file),
        "--log-dir",
        str(log_dir),
        "--no-schedules",
        *(["--authorizer-ttl", str(authorizer_ttl_s)] if authorizer_ttl_s is not None else []),
        *[arg for param in params for arg in ("--param", param)],
    ]
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv  # nosec B603
        command,
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    url = None
    deadline = time.monotonic() + startup_timeout_s
    assert process.stdout is not None
    log_dir.mkdir(parents=True, exist_ok=True)
    stack_log = (log_dir / STACK_LOG).open("a", encoding="utf-8")
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        stack_log.write(line)
        if line.startswith(READY_PREFIX):
            url = line[len(READY_PREFIX) :].strip()
            break
    if url is None:
        process.kill()
        stack_log.close()
        raise RuntimeError("local stack did not start:\n" + "".join(output[-50:]))
    # Keep reading what the stack prints after it is ready: a full pipe would block its writer
    # (a server thread logging a warning) and stall every request that thread serves. The lines
    # go to the stack log, which the log scan for secrets reads with the function logs.
    drain = threading.Thread(target=_drain, args=(process.stdout, stack_log), name="stack-output", daemon=True)
    drain.start()
    try:
        yield RunningStack(url=url, state=json.loads(state_file.read_text()), log_dir=log_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _drain(stream: IO[str], sink: IO[str]) -> None:
    with sink:
        for line in stream:
            sink.write(line)
            sink.flush()
