"""The fault proxy's errors, read by a real botocore client: the codes, statuses and retries botocore sees."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from werkzeug.serving import BaseWSGIServer, make_server

from cmdgate_local.fault_proxy import FAULTS_PATH, Call, FaultInjector, FaultRule, error_response, faulty


class Backend:
    """Stands in for moto: a valid, empty answer to every call, and a count of the calls it got."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls += 1
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        body = {"QueueUrl": "http://127.0.0.1/123456789012/q"} if target.startswith("AmazonSQS") else {}
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
        return [json.dumps(body).encode()]


@pytest.fixture
def proxy() -> Iterator[tuple[str, FaultInjector, Backend]]:
    backend, injector = Backend(), FaultInjector()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, faulty(backend, injector), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", injector, backend
    server.shutdown()
    server.server_close()


def client(url: str, service: str, *, access_key: str = "LOCALAPIFUNCTION", attempts: int = 1) -> Any:
    return boto3.session.Session(
        aws_access_key_id=access_key, aws_secret_access_key="testing", region_name="us-east-1"
    ).client(
        service,
        endpoint_url=url,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}, connect_timeout=2, read_timeout=5),
    )


def set_rules(url: str, *rules: dict[str, Any], seed: int = 1) -> httpx.Response:
    return httpx.post(f"{url}{FAULTS_PATH}", json={"rules": list(rules), "seed": seed})


@pytest.mark.parametrize("fault", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_dynamodb_throttling_errors_parse_as_botocore_reads_them(proxy: Any, fault: str) -> None:
    url, _, backend = proxy
    assert set_rules(url, {"service": "dynamodb", "fault": fault}).status_code == 200
    with pytest.raises(ClientError) as raised:
        client(url, "dynamodb").get_item(TableName="t", Key={"pk": {"S": "a"}})
    error = raised.value.response
    assert error["Error"]["Code"] == fault
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert backend.calls == 0  # refused before it reached moto


def test_botocore_retries_a_throttled_call_and_then_succeeds(proxy: Any) -> None:
    url, injector, backend = proxy
    set_rules(url, {"service": "dynamodb", "fault": "ProvisionedThroughputExceededException", "count": 2})
    answer = client(url, "dynamodb", attempts=3).get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert backend.calls == 1
    assert injector.report()["injected"] == {"dynamodb:GetItem:ProvisionedThroughputExceededException": 2}


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("ServiceUnavailable", "AWS.SimpleQueueService.ServiceUnavailable", 503),
        ("RequestThrottled", "RequestThrottled", 400),
    ],
)
def test_sqs_errors_in_the_json_protocol_carry_their_query_codes(
    proxy: Any, fault: str, code: str, status: int
) -> None:
    url, _, _ = proxy
    set_rules(url, {"service": "sqs", "fault": fault, "actions": ["GetQueueUrl"]})
    with pytest.raises(ClientError) as raised:
        client(url, "sqs").get_queue_url(QueueName="q")
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_sqs_errors_in_the_query_protocol_are_its_xml() -> None:
    injector = FaultInjector()
    injector.set_rules([FaultRule.parse({"service": "sqs", "fault": "ServiceUnavailable", "callers": None})])
    error, _ = injector.decide(Call("x", "sqs", "SendMessage", json_protocol=False))
    assert error is not None
    status, headers, body = error_response(error, Call("x", "sqs", "SendMessage", json_protocol=False))
    parsed = create_parser("query").parse(
        {"status_code": int(status.split()[0]), "headers": dict(headers), "body": body}, None
    )
    assert parsed["Error"]["Code"] == "AWS.SimpleQueueService.ServiceUnavailable"
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_only_the_named_operations_and_the_functions_callers_are_hit(proxy: Any) -> None:
    url, _, backend = proxy
    set_rules(url, {"service": "dynamodb", "fault": "ThrottlingException", "actions": ["PutItem"]})
    client(url, "dynamodb").get_item(TableName="t", Key={"pk": {"S": "a"}})  # another operation
    client(url, "dynamodb", access_key="testing").put_item(TableName="t", Item={"pk": {"S": "a"}})  # a test's own call
    client(url, "sqs").get_queue_url(QueueName="q")  # another service
    assert backend.calls == 3
    with pytest.raises(ClientError):
        client(url, "dynamodb").put_item(TableName="t", Item={"pk": {"S": "a"}})


def test_a_rate_spoils_about_that_share_of_calls_and_clearing_turns_it_off(proxy: Any) -> None:
    url, _, backend = proxy
    set_rules(url, {"service": "dynamodb", "fault": "ThrottlingException", "rate": 0.3}, seed=5)
    dynamodb, failed = client(url, "dynamodb"), 0
    for _ in range(100):
        try:
            dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
        except ClientError:
            failed += 1
    assert 15 <= failed <= 45
    assert httpx.get(f"{url}{FAULTS_PATH}").json()["seen"] == 100
    assert httpx.delete(f"{url}{FAULTS_PATH}").json()["rules"] == []
    backend.calls = 0
    dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert backend.calls == 1


def test_latency_delays_the_call_and_then_lets_it_through(proxy: Any) -> None:
    url, _, backend = proxy
    set_rules(url, {"service": "dynamodb", "fault": "latency", "latency_ms": 300})
    started = time.monotonic()
    client(url, "dynamodb").get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert time.monotonic() - started >= 0.3
    assert backend.calls == 1


@pytest.mark.parametrize(
    "body",
    [
        {"rules": [{"service": "s3", "fault": "SlowDown"}]},
        {"rules": [{"service": "dynamodb", "fault": "RequestThrottled"}]},
        {"rules": [{"service": "dynamodb", "fault": "ThrottlingException", "rate": 2}]},
        {"rules": [{"service": "dynamodb", "fault": "latency", "latency_ms": "soon"}]},
        {"rules": [{"service": "dynamodb", "fault": "latency", "actions": "PutItem"}]},
        {"rules": "all"},
        {"rules": [], "seed": "x"},
        [1],
    ],
)
def test_a_rule_not_understood_is_refused_and_changes_nothing(proxy: Any, body: Any) -> None:
    url, injector, _ = proxy
    answer = httpx.post(f"{url}{FAULTS_PATH}", json=body)
    assert answer.status_code == 400 and answer.json()["error"]
    assert not injector.active


def test_a_body_that_is_not_json_is_refused(proxy: Any) -> None:
    url, injector, _ = proxy
    assert httpx.post(f"{url}{FAULTS_PATH}", content=b"{").status_code == 400
    assert not injector.active
