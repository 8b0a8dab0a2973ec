"""audit.secrets_in_logs: each kind of secret cmdgate handles is found in a log line, and reported unleaked."""

from __future__ import annotations

import base64
import json
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from audit.secrets_in_logs import Hit, main, scan, scan_line
from cmdgate.auth.apikeys import generate_api_key
from cmdgate_local.stack import ADMIN_KEY_LINE

HS_SECRET = "unit-test-hs256-secret-of-at-least-32-bytes!"


@pytest.fixture
def planted() -> Iterator[Path]:
    """A folder for planted secrets outside pytest's basetemp, gone after the test: the suite's own
    log scan (tests/integration/test_zzz_no_secrets_in_logs.py) reads every file below the basetemp."""
    with tempfile.TemporaryDirectory(prefix="cmdgate-planted-secrets-") as folder:
        yield Path(folder)


def kinds(line: str, known: tuple[str, ...] = ()) -> list[str]:
    return [kind for kind, _ in scan_line(line, known)]


def log_line(**fields: object) -> str:
    return json.dumps({"level": "INFO", "service": "cmdgate", **fields})


def test_a_generated_api_key_is_found_anywhere_in_a_line() -> None:
    key = generate_api_key()
    assert kinds(log_line(message=f"auth with {key}")) == ["api key"]
    assert kinds(f"Authorization: Bearer {key}") == ["api key"]
    assert kinds("cg_test_admin_key_for_integration_only") == ["api key"]  # hand-made keys too


def test_jwts_are_found_signed_or_unsigned() -> None:
    signed = jwt.encode({"sub": "alice", "aud": "cmdgate"}, HS_SECRET, algorithm="HS256")
    unsigned = jwt.encode({"sub": "alice"}, "", algorithm="none")
    assert unsigned.endswith(".")
    assert kinds(log_line(token=signed)) == ["jwt"]
    assert kinds(f"token={unsigned} rest") == ["jwt"]


def test_github_tokens_signing_secrets_and_known_values_are_found() -> None:
    assert kinds("token ghp_" + "a1B2" * 9) == ["github token"]
    assert kinds("github_pat_" + "x" * 30) == ["github token"]
    assert kinds("Authorization: token local-gist-token") == ["known secret"]
    whsec = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    assert kinds(log_line(secret=whsec)) == ["signing secret"]
    assert kinds(f"x {HS_SECRET} y", known=(HS_SECRET,)) == ["known secret"]


def test_ordinary_log_lines_have_no_hits() -> None:
    lines = [
        log_line(message="run_command", key_id="k_0123456789abcdef", principal="key:0123456789abcdef"),
        log_line(message="callback signed", prefix="whsec_", header="webhook-signature"),
        "START RequestId: 8f0c Version: $LATEST",
        log_line(reason="token expired", correlation_id="bf2861f8-52d8-4737-8880-6307c9403e16"),
        "Starting runtime without AWS_SESSION_TOKEN , Expected?: false",
        "msg_cg_abcdefghijklmnopqrstuvwxyz is a field name, not a key",
    ]
    assert [line for line in lines if kinds(line)] == []


def test_only_make_runs_admin_key_notice_may_show_a_key() -> None:
    key = generate_api_key()
    assert kinds(ADMIN_KEY_LINE.format(key=key)) == []
    assert kinds(f"later: {key}") == ["api key"]  # the same key on any other line is a hit


def test_scan_reads_every_log_file_below_its_roots_and_reports_no_secret(planted: Path) -> None:
    tmp_path = planted
    key = generate_api_key()
    (tmp_path / "stack" / "logs").mkdir(parents=True)
    (tmp_path / "stack" / "logs" / "ApiFunction-0.log").write_text("one\ntwo\n")
    (tmp_path / "stack" / "logs" / "WorkerFunction-1.log").write_text(f"ok\nleak {key}\n")
    (tmp_path / "stack" / "logs" / "iam-report.json").write_text(key)  # not a log file
    result = scan([tmp_path])
    assert [p.name for p in result.files] == ["ApiFunction-0.log", "WorkerFunction-1.log"]
    assert result.lines == 4
    assert result.hits == (Hit(tmp_path / "stack" / "logs" / "WorkerFunction-1.log", 2, "api key", key[:8]),)
    assert key not in str(result.hits[0])


def test_the_command_line_fails_on_a_hit_without_printing_the_secret(
    planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path = planted
    clean, dirty = tmp_path / "clean.log", tmp_path / "dirty.log"
    clean.write_text("nothing here\n")
    key = generate_api_key()
    dirty.write_text(f"{key}\n")
    assert main([str(clean)]) == 0
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "dirty.log:1: api key" in out and key not in out


def test_a_stack_s_build_copy_is_not_walked_and_a_file_gone_before_it_is_read_is_left_out(
    planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other stacks of the run remove their build copy (build-<pid>) and logs while the scan reads.
    logs = planted / "stack" / "logs"
    logs.mkdir(parents=True)
    (logs / "ApiFunction-0.log").write_text("kept\n")
    copy = planted / "stack" / "build-4242" / "ResilienceLayer" / "python" / "pkg"
    copy.mkdir(parents=True)
    (copy / "example.log").write_text(generate_api_key())  # code, not a log of this run
    assert [p.name for p in scan([planted]).files] == ["ApiFunction-0.log"]
    assert [p.name for p in scan([planted / "stack" / "build-x"]).files] == []  # a root that is gone

    import audit.secrets_in_logs as module

    listed = module.log_files
    gone = logs / "WorkerFunction-1.log"
    monkeypatch.setattr(module, "log_files", lambda roots: [*listed(roots), gone])
    result = scan([planted])
    assert [p.name for p in result.files] == ["ApiFunction-0.log"] and result.lines == 1
