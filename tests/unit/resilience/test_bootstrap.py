"""`python -m cmdgate.bootstrap`: the first admin key, or one clear line on stderr and exit 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from cmdgate.auth import ApiKeyStore
from cmdgate.bootstrap import main

ROOT = Path(__file__).resolve().parents[3]


def keys_stack(session: boto3.session.Session, template_data: dict[str, Any], name: str = "cmdgate") -> None:
    props = template_data["Resources"]["KeysTable"]["Properties"]
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }
    body = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"KeysTable": table}}
    session.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(body))


def one_line_failure(capsys: pytest.CaptureFixture[str], status: int) -> str:
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("cmdgate.bootstrap: ")
    return lines[0]


def test_creates_the_admin_key_of_the_named_stack_in_the_given_region(
    session: boto3.session.Session, template_data: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    keys_stack(session, template_data)
    assert main(["--stack-name", "cmdgate", "--region", "us-east-1"]) == 0
    api_key = capsys.readouterr().out.splitlines()[-1]
    table_name = session.client("cloudformation").describe_stack_resource(
        StackName="cmdgate", LogicalResourceId="KeysTable"
    )["StackResourceDetail"]["PhysicalResourceId"]
    found = ApiKeyStore(session.resource("dynamodb").Table(table_name)).find_by_key(api_key)
    assert found is not None
    assert list(found.permissions) == ["admin"]


def test_a_second_bootstrap_is_refused_in_one_line(
    session: boto3.session.Session, template_data: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    keys_stack(session, template_data)
    assert main(["--stack-name", "cmdgate"]) == 0
    capsys.readouterr()
    line = one_line_failure(capsys, main(["--stack-name", "cmdgate"]))
    assert "refused" in line


def test_a_missing_stack_is_one_line(session: boto3.session.Session, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_failure(capsys, main(["--stack-name", "no-such-stack", "--region", "us-east-1"]))
    assert "'no-such-stack'" in line
    assert "not found in us-east-1" in line


def test_a_stack_without_a_keys_table_is_one_line(
    session: boto3.session.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    session.client("cloudformation").create_stack(StackName="other", TemplateBody=json.dumps(body))
    line = one_line_failure(capsys, main(["--stack-name", "other"]))
    assert "KeysTable not found" in line


def test_a_missing_table_is_one_line(session: boto3.session.Session, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_failure(capsys, main(["--table", "no-such-table"]))
    assert "keys table 'no-such-table' not found in us-east-1" in line


def test_an_unknown_profile_is_one_line(session: boto3.session.Session, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_failure(capsys, main(["--table", "t", "--profile", "no-such-profile"]))
    assert "profile 'no-such-profile' not found" in line


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The module as an operator runs it, with no AWS configuration but what `env` gives."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean |= {
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/resilience", "layers/commands")),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        # No instance metadata lookups: the test must not depend on where it runs.
        "AWS_EC2_METADATA_DISABLED": "true",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "cmdgate.bootstrap", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_without_credentials_it_says_so_in_one_line(tmp_path: Path) -> None:
    line = assert_one_line(run_cli(tmp_path, "--stack-name", "cmdgate", "--region", "us-east-1"))
    assert "no AWS credentials" in line


def test_without_a_region_it_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--stack-name", "cmdgate", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    assert "no AWS region" in assert_one_line(result)


def test_an_unreachable_aws_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli(
        tmp_path,
        "--stack-name",
        "cmdgate",
        "--region",
        "us-east-1",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )
    assert "could not be reached" in assert_one_line(result)
