"""Shared fixtures: in-process moto with safe credentials, and tables shaped like template.yaml's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cmdgate_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "us-east-1"

_AWS_VARIABLES_TO_CLEAR = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


@pytest.fixture(scope="session")
def template_data() -> dict[str, Any]:
    """template.yaml as plain data (short-form intrinsics turned into their long form)."""
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def _shared_session() -> boto3.session.Session:
    # One session for the whole run: it keeps botocore's loaded service models, so a client or
    # resource costs milliseconds instead of ~0.1 s. The endpoint is still resolved per client.
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("AWS_PROFILE", raising=False)  # read when the session is built
        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@contextmanager
def in_process_aws(monkeypatch: pytest.MonkeyPatch, scratch: Path) -> Iterator[None]:
    """Dummy credentials, one region, no endpoint override to a real or local stack, then moto."""
    for name in _AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(scratch / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(scratch / "no-aws-credentials"))
    with mock_aws():
        yield


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """In-process moto for one test."""
    with in_process_aws(monkeypatch, tmp_path):
        yield


@pytest.fixture(scope="class")
def class_session(
    tmp_path_factory: pytest.TempPathFactory, _shared_session: boto3.session.Session
) -> Iterator[boto3.session.Session]:
    """In-process moto shared by the tests of one class (read-only tests of a costly setup).

    Class scope, so it ends before the next test outside the class starts its own moto: nested mocks
    would share state.
    """
    with pytest.MonkeyPatch.context() as monkeypatch, in_process_aws(monkeypatch, tmp_path_factory.mktemp("aws")):
        yield _shared_session


@pytest.fixture
def session(aws: None, _shared_session: boto3.session.Session) -> boto3.session.Session:
    """A boto3 session whose clients talk to the in-process moto of this test."""
    return _shared_session


@pytest.fixture
def table_like(session: boto3.session.Session, template_data: dict[str, Any]) -> Callable[[str], Any]:
    """Create a DynamoDB table with the key schema and indexes of a template resource; returns the Table."""
    resource = session.resource("dynamodb")

    def create(logical_id: str) -> Any:
        props = template_data["Resources"][logical_id]["Properties"]
        kwargs: dict[str, Any] = {
            "TableName": f"unit-{logical_id}",
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        return resource.create_table(**kwargs)

    return create
