"""Starts the real local stack (moto, RIE pools, API front, pollers) once per test session."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
READY = "cmdgate local stack ready on "
ADMIN_KEY = "cg_test_admin_key_for_integration_only"
MAX_RECEIVE_COUNT = 2
JWT_ISSUER = "https://issuer.test/"
JWT_AUDIENCE = "cmdgate"
JWT_SECRET_NAME = "cmdgate-test-jwt-secret"
JWT_ISSUERS = json.dumps(
    [
        {
            "issuer": JWT_ISSUER,
            "audience": JWT_AUDIENCE,
            "algorithms": ["HS256"],
            "hs256_secret_arn": JWT_SECRET_NAME,
            "claim_permissions": {"role=deployer": ["commands.run:echo", "commands.list"]},
        }
    ]
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """A running local stack and handles on its parts."""

    url: str
    admin_key: str
    state: dict[str, Any]
    log_dir: Path

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    @property
    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def aws(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client(service, endpoint_url=self.state["moto_url"])

    def resource(self, logical_id: str, attribute: str = "Ref") -> str:
        return str(self.state["resources"][logical_id][attribute])

    def create_key(self, permissions: list[str], name: str = "test") -> str:
        """Register an API key directly in the keys table (the admin API arrives with its own issue)."""
        from cmdgate.auth import ApiKeyStore

        table = (
            boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
            .resource("dynamodb", endpoint_url=self.state["moto_url"])
            .Table(self.resource("KeysTable"))
        )
        key, _ = ApiKeyStore(table).create(name, permissions, {"quota": 1000, "window_s": 60})
        return key


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; fail with the last value otherwise (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last value: {value!r})")


@contextmanager
def running_stack(workdir: Path, extra_params: tuple[str, ...] = ()) -> Iterator[Stack]:
    """Start `python -m cmdgate_local` on free ports with short timers; stop it (and every child) after."""
    if not (ROOT / ".aws-sam" / "build" / "template.yaml").exists():
        pytest.fail("run `make build` first (the local stack runs what sam build produced)")
    state_file, log_dir = workdir / "state.json", workdir / "logs"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/resilience", "layers/commands", "local")),
        "CMDGATE_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
    }
    params = [
        "WorkerVisibilityTimeoutS=4",
        "EventsVisibilityTimeoutS=1",
        f"MaxReceiveCount={MAX_RECEIVE_COUNT}",
        f"JwtIssuers={JWT_ISSUERS}",
        *extra_params,
    ]
    command = [
        sys.executable,
        "-m",
        "cmdgate_local",
        "--root",
        str(ROOT),
        "--port",
        str(_free_port()),
        "--pool-size",
        "3",
        "--state-file",
        str(state_file),
        "--log-dir",
        str(log_dir),
        "--authorizer-ttl",
        "1",
        "--no-schedules",
        *[arg for param in params for arg in ("--param", param)],
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    output: list[str] = []
    url = None
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if line.startswith(READY):
            url = line[len(READY) :].strip()
            break
    if url is None:
        process.kill()
        pytest.fail("local stack did not start:\n" + "".join(output[-50:]))
    try:
        yield Stack(url=url, admin_key=ADMIN_KEY, state=json.loads(state_file.read_text()), log_dir=log_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The local stack with the testing command pack on."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
