"""`make invoke`: no running stack is one line at once; 5xx answers count as failures; quiet logs."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmdgate_local.__main__ import configure_logging
from cmdgate_local.invoke import failed, main
from cmdgate_local.lambda_runtime import InvokeResult

ROOT = Path(__file__).resolve().parents[3]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(finished.stdout)


def run_invoke(state_file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    started = time.monotonic()
    status = main(
        ["ApiFunction", str(ROOT / "events" / "api_health.json"), "--root", str(ROOT), "--state-file", str(state_file)]
    )
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return status, lines[0], elapsed


def write_state(path: Path, pid: int, moto_port: int) -> Path:
    path.write_text(json.dumps({"pid": pid, "moto_url": f"http://127.0.0.1:{moto_port}", "functions": {}}))
    return path


def test_no_state_file_is_one_line_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, line, elapsed = run_invoke(tmp_path / "state.json", capsys)
    assert status == 2
    assert "no local stack is running" in line
    assert "make run" in line
    assert elapsed < 5


def test_a_state_file_left_by_a_dead_stack_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_file = write_state(tmp_path / "state.json", dead_pid(), closed_port())
    status, line, elapsed = run_invoke(state_file, capsys)
    assert status == 2
    assert "is gone" in line
    assert elapsed < 5


def test_a_stack_whose_aws_endpoint_is_closed_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_file = write_state(tmp_path / "state.json", os.getpid(), closed_port())
    status, line, elapsed = run_invoke(state_file, capsys)
    assert status == 2
    assert "does not answer" in line
    assert elapsed < 5


def result(payload: object, function_error: bool = False) -> InvokeResult:
    return InvokeResult(json.dumps(payload).encode(), function_error, 1.0, True, 0)


def test_a_5xx_answer_or_a_function_error_fails_and_others_do_not() -> None:
    assert failed(result({"statusCode": 500, "body": "{}"}))
    assert failed(result({"statusCode": 503}))
    assert failed(result({"errorType": "X", "errorMessage": "boom"}, function_error=True))
    assert not failed(result({"statusCode": 404}))
    assert not failed(result({"statusCode": 200}))
    assert not failed(result({"principalId": "k", "policyDocument": {}}))


def test_status_names_the_outcome() -> None:
    assert result({"statusCode": 201}).status == "201"
    assert result({"errorType": "X", "errorMessage": "m"}, function_error=True).status == "error"
    assert result({"batchItemFailures": []}).status == "ok"
    assert InvokeResult(b"not json", False, 1.0, False, 0).status == "ok"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("cmdgate_local").level)
    werkzeug = logging.getLogger("werkzeug").level
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    logging.getLogger("cmdgate_local").setLevel(saved[2])
    logging.getLogger("werkzeug").setLevel(werkzeug)


@pytest.mark.usefixtures("restore_logging")
def test_verbose_shows_invocations_but_no_library_debug_lines() -> None:
    configure_logging(verbose=True)
    assert logging.getLogger("cmdgate_local").isEnabledFor(logging.INFO)
    for library in ("botocore.auth", "botocore.endpoint", "urllib3", "httpx", "werkzeug"):
        assert not logging.getLogger(library).isEnabledFor(logging.DEBUG), library
    configure_logging(verbose=False)
    assert not logging.getLogger("cmdgate_local").isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("restore_logging")
def test_werkzeug_never_logs_each_request() -> None:
    """werkzeug sets its logger to INFO on first use unless it has a level: a line per request of every
    loopback server filled the launcher's pipe and stalled moto mid-suite."""
    configure_logging(verbose=True)
    assert logging.getLogger("werkzeug").level == logging.WARNING


def test_check_stack_answers_before_any_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check-stack", "--state-file", str(tmp_path / "state.json")]) == 2
    assert "no local stack is running" in capsys.readouterr().err
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        state_file = write_state(tmp_path / "state.json", os.getpid(), listening.getsockname()[1])
        assert main(["--check-stack", "--state-file", str(state_file)]) == 0
    assert capsys.readouterr().err == ""
