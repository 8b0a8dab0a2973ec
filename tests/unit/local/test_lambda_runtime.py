"""The local Lambda pool: Lambda's synchronous invoke limit, and its init phase outside a short timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cmdgate_local.lambda_runtime import (
    COVERAGE_BOOTSTRAP,
    INIT_ALLOWANCE_S,
    MAX_INVOKE_PAYLOAD_BYTES,
    PORT_TRIES,
    ExecutionEnvironment,
    FunctionPool,
    FunctionRuntime,
    InvocationTimeout,
    InvokeResult,
    PayloadTooLarge,
    PortTaken,
    children,
    coverage_environment,
    stop_children,
)


class FakeEnvironment:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.runtime = type("Runtime", (), {"name": "ApiFunction"})()

    def start(self) -> None:
        pass

    def invoke(self, payload: bytes) -> InvokeResult:
        self.payloads.append(payload)
        return InvokeResult(b"{}", False, 1.0, False, 0)


def pool_of(env: FakeEnvironment) -> FunctionPool:
    pool = FunctionPool([env])  # type: ignore[list-item]
    pool.start()
    return pool


def test_an_event_over_the_invoke_limit_never_reaches_an_environment() -> None:
    env = FakeEnvironment()
    with pytest.raises(PayloadTooLarge):
        pool_of(env).invoke({"body": "x" * MAX_INVOKE_PAYLOAD_BYTES})
    assert env.payloads == []


def test_an_event_at_the_limit_is_invoked() -> None:
    env = FakeEnvironment()
    event: dict[str, Any] = {"body": ""}
    event["body"] = "x" * (MAX_INVOKE_PAYLOAD_BYTES - len('{"body": ""}'))
    pool_of(env).invoke(event)
    assert len(env.payloads[0]) == MAX_INVOKE_PAYLOAD_BYTES


def runtime(timeout_s: int) -> FunctionRuntime:
    return FunctionRuntime("AuthorizerFunction", "app.handler", Path("."), (), {}, timeout_s, 128)


def test_short_timeouts_get_lambdas_init_allowance_and_long_ones_keep_theirs() -> None:
    assert runtime(5).emulator_timeout_s == 5 + INIT_ALLOWANCE_S
    assert runtime(29).emulator_timeout_s == 29  # its handler reads the remaining time


class SlowClient:
    """Answers after `took_s` of the fake clock."""

    def __init__(self, clock: list[float], took_s: float) -> None:
        self.clock, self.took_s = clock, took_s

    def post(self, url: str, content: bytes) -> httpx.Response:
        self.clock[0] += self.took_s
        return httpx.Response(200, content=b'{"principalId": "p"}')


@pytest.mark.parametrize(("cold", "took_s", "times_out"), [(True, 8.0, False), (False, 8.0, True), (False, 1.0, False)])
def test_only_a_cold_start_may_use_the_init_allowance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cold: bool, took_s: float, times_out: bool
) -> None:
    clock = [100.0]
    monkeypatch.setattr("cmdgate_local.lambda_runtime.time.monotonic", lambda: clock[0])
    env = ExecutionEnvironment(runtime(5), 0, tmp_path / "rie", tmp_path / "python", tmp_path)
    env.invocations = 0 if cold else 1
    env._client = SlowClient(clock, took_s)  # type: ignore[assignment]
    if times_out:
        with pytest.raises(InvocationTimeout):
            env.invoke(b"{}")
    else:
        assert env.invoke(b"{}").cold is cold


# -- coverage of the runtimes (docs/coverage.md) ----------------------------------------------------


def test_only_coverage_settings_are_carried_into_a_runtime() -> None:
    environ = {"COVERAGE_PROCESS_START": "/r/pyproject.toml", "COVERAGE_FILE": "/r/d/.coverage", "HOME": "/h"}
    assert coverage_environment(environ) == {
        "COVERAGE_PROCESS_START": "/r/pyproject.toml",
        "COVERAGE_FILE": "/r/d/.coverage",
    }
    assert coverage_environment({"HOME": "/h", "PYTHONPATH": "/dev"}) == {}
    # A local stack started by `make test` (not `make coverage`) keeps COVERAGE_FILE alone: unmeasured.
    assert coverage_environment({"COVERAGE_FILE": "/r/d/.coverage", "HOME": "/h"}) == {}


FAKE_RIE = """#!/bin/sh
# Records how it was started, then exits (the environment reports "emulator exited").
printf '%s\\n' "$@" > "$0.argv"
env > "$0.env"
"""


def started_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> tuple[list[str], str]:
    rie = tmp_path / "rie"
    rie.write_text(FAKE_RIE)
    rie.chmod(0o755)
    for name in [name for name in os.environ if name.startswith("COVERAGE_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    env = ExecutionEnvironment(runtime(5), 0, rie, Path("/runtime/python"), tmp_path)
    with pytest.raises(RuntimeError, match="emulator exited"):
        env.start()
    return (tmp_path / "rie.argv").read_text().split("\n")[:-1], (tmp_path / "rie.env").read_text()


def test_a_measured_runtime_starts_through_the_coverage_bootstrap_with_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, environment = started_with(tmp_path, monkeypatch, {"COVERAGE_PROCESS_START": "/r/pyproject.toml"})
    assert argv[4:] == ["/runtime/python", str(COVERAGE_BOOTSTRAP), "-m", "awslambdaric", "app.handler"]
    assert "COVERAGE_PROCESS_START=/r/pyproject.toml" in environment.splitlines()


def test_an_unmeasured_runtime_starts_as_lambda_starts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv, environment = started_with(tmp_path, monkeypatch, {})
    assert argv[4:] == ["/runtime/python", "-m", "awslambdaric", "app.handler"]
    assert "COVERAGE_" not in environment


def test_stop_children_terminates_a_processes_children_and_waits_for_them() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', '60'])"])
    try:
        found = wait_until(lambda: children(parent.pid))
        assert len(found) == 1
        stop_children(parent.pid, timeout_s=5)
        assert parent.wait(timeout=5) == 0  # its child ended on SIGTERM, so run() returned
        assert children(parent.pid) == []
    finally:
        parent.kill()
        parent.wait()


def wait_until(predicate: Callable[[], list[int]], timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("no child process appeared")


def test_a_stack_is_measured_only_when_the_runtimes_are_asked_for() -> None:
    from cmdgate_local.launcher import stack_environment

    measured = {"COVERAGE_PROCESS_START": "/r/pyproject.toml", "COVERAGE_FILE": "/r/d/.coverage", "HOME": "/h"}
    plain = stack_environment(measured, {}, "cg_admin")
    assert "COVERAGE_PROCESS_START" not in plain and plain["CMDGATE_BOOTSTRAP_ADMIN_KEY"] == "cg_admin"
    assert coverage_environment(plain) == {}  # so its runtimes start without the coverage bootstrap
    everything = stack_environment({**measured, "CMDGATE_COVERAGE_RUNTIMES": "1"}, {}, "cg_admin")
    assert everything["COVERAGE_PROCESS_START"] == "/r/pyproject.toml"
    assert coverage_environment(everything)["COVERAGE_FILE"] == "/r/d/.coverage"


BUSY_PORT_RIE = """#!/bin/sh
# The first launch finds its port taken (as the emulator reports it), the second listens... and exits.
count=$(cat "$0.count" 2>/dev/null || echo 0)
echo $((count + 1)) > "$0.count"
if [ "$count" = "0" ]; then
  echo "[PANIC] (rapid) Runtime API Server failed to listen error=listen tcp 127.0.0.1:1: bind: address already in use"
fi
"""


def test_a_port_taken_before_the_emulator_binds_it_is_tried_again_on_new_ports(tmp_path: Path) -> None:
    rie = tmp_path / "rie"
    rie.write_text(BUSY_PORT_RIE)
    rie.chmod(0o755)
    env = ExecutionEnvironment(runtime(5), 0, rie, Path("/runtime/python"), tmp_path)
    with pytest.raises(RuntimeError, match="emulator exited") as raised:
        env.start()
    assert not isinstance(raised.value, PortTaken)  # the second launch's own failure, not the bind
    assert (tmp_path / "rie.count").read_text().strip() == "2"


def test_a_port_always_taken_gives_up_after_a_few_launches(tmp_path: Path) -> None:
    rie = tmp_path / "rie"
    rie.write_text('#!/bin/sh\necho x >> "$0.count"\necho "bind: address already in use"\n')
    rie.chmod(0o755)
    env = ExecutionEnvironment(runtime(5), 0, rie, Path("/runtime/python"), tmp_path)
    with pytest.raises(PortTaken):
        env.start()
    assert len((tmp_path / "rie.count").read_text().split()) == PORT_TRIES
