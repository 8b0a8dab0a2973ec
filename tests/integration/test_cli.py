"""The operator CLI `cmdgate` driven against the local stack: what an operator does, with its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cmdgate_cli.app import main
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Ran]


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """`cmdgate ARGS` in-process (real HTTP to the stack), as the admin unless `key` is given."""
    monkeypatch.setenv("CMDGATE_URL", stack.url)
    monkeypatch.setenv("CMDGATE_CONFIG", str(tmp_path / "absent.toml"))

    def run(*args: str, key: str | None = None) -> Ran:
        monkeypatch.setenv("CMDGATE_API_KEY", key or stack.admin_key)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert stack.admin_key not in captured.out + captured.err
        return Ran(code, captured.out, captured.err)

    return run


def test_keys_create_list_use_and_revoke(cli: Cli) -> None:
    created = cli(
        "-o", "json", "keys", "create", "--name", "cli-test", "-p", "commands.run:echo", "-p", "commands.list"
    )
    assert created.code == 0, created.err
    body = created.json()
    key_id, api_key = body["key_id"], body["api_key"]

    listed = cli("-o", "json", "keys", "list")
    assert listed.code == 0
    keys = listed.json()["keys"]
    mine = next(k for k in keys if k["key_id"] == key_id)
    assert mine["permissions"] == ["commands.run:echo", "commands.list"]
    assert api_key not in listed.out

    ran = cli("run", "echo", "-p", "message=with the new key", key=api_key)
    assert (ran.code, json.loads(ran.out)) == (0, {"message": "with the new key"})
    refused = cli("run", "counter.increment", "-p", "key=x", key=api_key)
    assert refused.code == 3
    assert "FORBIDDEN" in refused.err

    assert cli("keys", "revoke", key_id).code == 0
    # Revoked within the authorizer cache TTL (1 s on the test stack): then the key is refused (401, exit 3).
    revoked = wait_for(lambda: (r := cli("run", "echo", key=api_key)).code == 3 and r, timeout_s=10)
    assert "401" in revoked.err


def test_run_sync_and_a_failing_run(cli: Cli) -> None:
    ran = cli("run", "echo", "-p", "message=hi")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out) == {"message": "hi"}
    assert cli("run", "sleep", "-p", "seconds:=0").code == 0  # a JSON-typed param
    failed = cli("run", "fail", "-p", "mode=permanent")
    assert failed.code == 1
    assert "COMMAND_FAILED" in failed.err


def test_run_async_and_wait_with_live_status(cli: Cli) -> None:
    ran = cli("run", "echo", "-p", "message=later", "--async", "--wait", "--wait-timeout", "30")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out) == {"message": "later"}
    assert ": succeeded" in ran.err

    queued = cli("run", "echo", "-p", "message=queued", "--async")
    assert queued.code == 0
    execution_id = queued.out.strip()
    waited = cli("-o", "json", "executions", "wait", execution_id, "--wait-timeout", "30")
    assert waited.code == 0
    assert waited.json()["result"] == {"message": "queued"}
    got = cli("-o", "json", "executions", "get", execution_id)
    assert got.json()["status"] == "succeeded"
    # A finished execution cannot be cancelled: 409 where the route exists, "cannot cancel" where it does not.
    cancelled = cli("executions", "cancel", execution_id)
    assert cancelled.code == 3, cancelled.err
    assert "cannot cancel" in cancelled.err or "409" in cancelled.err


def test_an_async_run_that_fails_exits_1(cli: Cli) -> None:
    ran = cli("run", "fail", "-p", "mode=permanent", "--async", "--wait", "--wait-timeout", "30")
    assert ran.code == 1, ran.err
    assert "failed" in ran.err


def test_a_dead_letter_is_listed_and_redriven_to_success(cli: Cli) -> None:
    # Fails its first two attempts: MaxReceiveCount 2 dead-letters it; the redrive's third attempt succeeds.
    queued = cli("run", "fail", "-p", "mode=transient", "-p", "times:=2", "--async")
    execution_id = queued.out.strip()
    dead = cli("executions", "wait", execution_id, "--wait-timeout", "60")
    assert dead.code == 1, dead.err
    assert "dead_lettered" in dead.err
    listed = cli("-o", "json", "dlq", "list")
    assert execution_id in [e["execution_id"] for e in listed.json()["executions"]]
    redriven = cli("-o", "json", "dlq", "redrive", execution_id)
    assert redriven.json() == {"redriven": [execution_id], "skipped": []}
    done = cli("-o", "json", "executions", "wait", execution_id, "--wait-timeout", "60")
    assert done.code == 0, done.err
    assert done.json()["result"] == {"attempt": 3}


def test_state_put_patch_history_diff_and_restore(cli: Cli) -> None:
    key = f"cli.test-{uuid.uuid4().hex[:8]}"
    assert cli("state", "put", key, "--value", '{"replicas": 2, "image": "v1"}', "--create").code == 0
    again = cli("state", "put", key, "--value", "{}", "--create")
    assert again.code == 3  # exists: 412
    assert "412" in again.err
    patched = cli("-o", "json", "state", "patch", key, "--value", '{"image": "v2"}', "--if-match", "1")
    assert patched.code == 0, patched.err
    assert (patched.json()["version"], patched.json()["value"]) == (2, {"replicas": 2, "image": "v2"})

    history = cli("-o", "json", "state", "history", key)
    assert [v["version"] for v in history.json()["versions"]] == [2, 1]

    diff = cli("state", "diff", key, "1", "2")
    assert diff.code == 0
    lines = diff.out.splitlines()
    assert lines[:2] == [f"--- {key}@1", f"+++ {key}@2"]
    assert '-  "image": "v1",' in lines
    assert '+  "image": "v2",' in lines

    restored = cli("-o", "json", "state", "restore", key, "1")
    assert restored.code == 0
    assert restored.json()["version"] == 3
    current = cli("state", "get", key)
    assert json.loads(current.out) == {"replicas": 2, "image": "v1"}
    assert "version 3" in current.err
    old = cli("state", "get", key, "--version", "2")
    assert json.loads(old.out) == {"replicas": 2, "image": "v2"}


def test_health_dlq_and_openapi(cli: Cli) -> None:
    health = cli("health")
    assert health.code == 0, health.err
    assert "dynamodb" in health.out
    assert "healthy" in health.out or "degraded" in health.out
    assert cli("-o", "json", "dlq", "list").code == 0
    spec = cli("openapi")
    assert spec.code == 0
    assert "/v1/commands/{name}" in spec.json()["paths"]


def test_unknown_keys_and_commands_are_refused_with_exit_3(cli: Cli) -> None:
    unknown = cli("keys", "list", key="cg_not_a_key_of_this_stack")
    assert unknown.code == 3
    missing = cli("-o", "json", "run", "no.such.command")
    assert missing.code == 3
    assert missing.json()["error"]["status"] == 404


def test_the_console_entry_point_runs_as_a_process(stack: Stack, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "cli"),
        "CMDGATE_URL": stack.url,
        "CMDGATE_CONFIG": str(tmp_path / "absent.toml"),
    }
    env.pop("CMDGATE_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "cmdgate_cli", "-o", "json", "health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] in {"healthy", "degraded"}
    refused = subprocess.run(
        [sys.executable, "-m", "cmdgate_cli", "keys", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2  # no key anywhere: a usage error, before any request
    assert "No API key" in refused.stderr
