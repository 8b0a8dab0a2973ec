"""The pre-traffic smoke test: the real authorizer logic and key store (moto), api versions faked per case."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cmdgate.auth import ApiKeyStore, AuthenticationFailed, authorize_request
from cmdgate.canary import FunctionAnswer, SmokeReport, SmokeTargets, SmokeTest
from cmdgate.canary.events import ApiTarget, policy_allows
from cmdgate.canary.hook import NotALifecycleEvent, handle_lifecycle_event

API_ARN = "arn:aws:lambda:us-east-1:123456789012:function:cmdgate-ApiFunction:7"
AUTHORIZER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:cmdgate-AuthorizerFunction:4"
TARGETS = SmokeTargets(API_ARN, AUTHORIZER_ARN, ApiTarget("us-east-1", "123456789012", "canary", "prod"))
ApiFake = Callable[[dict[str, Any]], FunctionAnswer]


def proxy(status: int, body: dict[str, Any]) -> FunctionAnswer:
    return FunctionAnswer({"statusCode": status, "headers": {}, "body": json.dumps(body)})


def good_api(event: dict[str, Any]) -> FunctionAnswer:
    if event["resource"] == "/v1/health":
        return proxy(200, {"status": "healthy", "checks": {}})
    assert event["requestContext"]["authorizer"]["principal_id"].startswith("key:")
    return proxy(200, {"status": "succeeded", "result": json.loads(event["body"])})


class Versions:
    """Invokes the real authorizer logic against the key store, and `api` for the api version."""

    def __init__(self, keys: ApiKeyStore, api: ApiFake) -> None:
        self.keys, self.api = keys, api
        self.calls: list[str] = []

    def invoke(self, function_arn: str, event: dict[str, Any]) -> FunctionAnswer:
        self.calls.append(event["resource"] if function_arn == API_ARN else "authorizer")
        if function_arn == AUTHORIZER_ARN:
            try:
                return FunctionAnswer(authorize_request(event, self.keys))
            except AuthenticationFailed:
                return FunctionAnswer({"errorMessage": "Unauthorized"}, "Unhandled")
        assert function_arn == API_ARN
        return self.api(event)


@pytest.fixture
def keys(table_like: Callable[[str], Any]) -> ApiKeyStore:
    return ApiKeyStore(table_like("KeysTable"))


def run(keys: ApiKeyStore, api: ApiFake, **kwargs: Any) -> tuple[dict[str, Any], Versions, list[float]]:
    versions, pauses = Versions(keys, api), list[float]()
    report = SmokeTest(TARGETS, versions, keys, sleep=pauses.append, **kwargs).run()
    return report.as_dict(), versions, pauses


def outcome(report: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(c["name"], c["ok"]) for c in report["checks"]]


def only_key(keys: ApiKeyStore) -> Any:
    records, _ = keys.list_page(10, None)
    assert len(records) == 1
    return records[0]


def test_a_good_version_passes_every_check_and_its_key_ends_revoked(keys: ApiKeyStore) -> None:
    report, versions, pauses = run(keys, good_api)
    assert report["ok"] and outcome(report) == [
        ("health", True),
        ("authorizer", True),
        ("echo", True),
        ("key_revoked", True),
    ]
    assert versions.calls == ["/v1/health", "authorizer", "/v1/commands/{name}"] and pauses == []
    key = only_key(keys)
    assert key.status == "revoked" and key.permissions == ("commands.run:echo",)
    assert key.expires_at is not None and key.expires_at - key.created_at <= 600


def test_an_echo_that_answers_another_message_fails(keys: ApiKeyStore) -> None:
    def wrong_echo(event: dict[str, Any]) -> FunctionAnswer:
        return good_api(event) if event["resource"] == "/v1/health" else proxy(200, {"result": {"message": "x"}})

    report, _, _ = run(keys, wrong_echo)
    assert not report["ok"] and ("echo", False) in outcome(report)


def test_a_version_that_errors_is_tried_three_times_then_refused(keys: ApiKeyStore) -> None:
    def crashing_echo(event: dict[str, Any]) -> FunctionAnswer:
        if event["resource"] == "/v1/health":
            return good_api(event)
        return FunctionAnswer({"errorType": "RuntimeError", "errorMessage": "boom"}, "Unhandled")

    report, versions, pauses = run(keys, crashing_echo)
    assert not report["ok"]
    echo = next(c for c in report["checks"] if c["name"] == "echo")
    assert echo["detail"] == "function error Unhandled (3 attempts)"
    assert versions.calls.count("/v1/commands/{name}") == 3 and pauses == [1.0, 2.0]
    assert only_key(keys).status == "revoked"


def test_a_cold_version_that_recovers_passes(keys: ApiKeyStore) -> None:
    answers = iter([proxy(503, {"status": "unhealthy"})])

    def cold_health(event: dict[str, Any]) -> FunctionAnswer:
        return next(answers, None) or good_api(event)

    report, versions, pauses = run(keys, cold_health)
    assert report["ok"] and versions.calls.count("/v1/health") == 2 and pauses == [1.0]


def test_an_unreachable_version_fails_without_crashing_and_still_revokes(keys: ApiKeyStore) -> None:
    def unreachable(event: dict[str, Any]) -> FunctionAnswer:
        raise ConnectionError("no route")

    report, _, _ = run(keys, unreachable, attempts=1)
    assert outcome(report) == [("health", False), ("authorizer", True), ("echo", False), ("key_revoked", True)]
    assert report["checks"][0]["detail"] == "function error invoke failed: ConnectionError"


def test_an_authorizer_that_refuses_the_key_skips_the_echo(keys: ApiKeyStore) -> None:
    class RefusingVersions(Versions):
        def invoke(self, function_arn: str, event: dict[str, Any]) -> FunctionAnswer:
            if function_arn == AUTHORIZER_ARN:
                event = {**event, "headers": {"Authorization": "Bearer cg_not_the_smoke_key"}}
            return super().invoke(function_arn, event)

    versions = RefusingVersions(keys, good_api)
    report = SmokeTest(TARGETS, versions, keys, sleep=lambda _: None, attempts=1).run().as_dict()
    assert outcome(report) == [("health", True), ("authorizer", False), ("key_revoked", True)]
    assert "/v1/commands/{name}" not in versions.calls


def test_a_policy_allows_only_what_it_names_and_a_deny_wins() -> None:
    arn = TARGETS.api.method_arn("POST", "/v1/commands/echo")
    allow = {
        "Effect": "Allow",
        "Resource": ["arn:aws:execute-api:us-east-1:123456789012:canary/prod/POST/v1/commands/*"],
    }
    deny = {"Effect": "Deny", "Resource": "arn:aws:execute-api:us-east-1:123456789012:canary/prod/*"}
    assert policy_allows({"policyDocument": {"Statement": [allow]}}, arn)
    assert not policy_allows({"policyDocument": {"Statement": [allow, deny]}}, arn)
    assert not policy_allows({"policyDocument": {"Statement": [allow]}}, TARGETS.api.method_arn("GET", "/v1/state/x"))
    assert not policy_allows(None, arn)


class CodeDeploy:
    def __init__(self) -> None:
        self.reports: list[dict[str, str]] = []

    def put_lifecycle_event_hook_execution_status(self, **fields: str) -> dict[str, str]:
        self.reports.append(fields)
        return {"lifecycleEventHookExecutionId": fields["lifecycleEventHookExecutionId"]}


LIFECYCLE_EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "hook-1"}


def test_the_verdict_is_reported_for_the_deployment(keys: ApiKeyStore) -> None:
    codedeploy = CodeDeploy()
    smoke = SmokeTest(TARGETS, Versions(keys, good_api), keys, sleep=lambda _: None)
    answer = handle_lifecycle_event(LIFECYCLE_EVENT, smoke.run, codedeploy)
    assert codedeploy.reports == [
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": "Succeeded"}
    ]
    assert answer["status"] == "Succeeded" and answer["deployment_id"] == "d-ABC123"


def test_a_smoke_test_that_cannot_run_is_reported_failed_at_once() -> None:
    def unreachable_key_store() -> SmokeReport:
        raise ConnectionError("dynamodb unreachable")

    codedeploy = CodeDeploy()
    answer = handle_lifecycle_event(LIFECYCLE_EVENT, unreachable_key_store, codedeploy)
    assert [r["status"] for r in codedeploy.reports] == ["Failed"]
    assert answer["error_class"] == "ConnectionError" and not answer["ok"]


@pytest.mark.parametrize(
    "event", [{}, {"DeploymentId": "d-1"}, {"DeploymentId": 1, "LifecycleEventHookExecutionId": "h"}, []]
)
def test_an_event_that_names_no_deployment_reports_nothing(event: Any) -> None:
    codedeploy = CodeDeploy()
    with pytest.raises(NotALifecycleEvent):
        handle_lifecycle_event(event, lambda: pytest.fail("no smoke test without a deployment"), codedeploy)
    assert codedeploy.reports == []
