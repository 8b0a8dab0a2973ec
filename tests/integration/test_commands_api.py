"""The first real path through the local stack: health, auth, sync and async echo, problem+json."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.integration


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text and "botocore" not in response.text
    return body


def test_health_is_open_and_reports_checks(stack: Stack) -> None:
    response = stack.client().get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body["checks"]) >= {"dynamodb", "sqs", "dead_letters", "healer"}
    failing = {name for name, check in body["checks"].items() if check["status"] != "ok"}
    assert failing <= {"dead_letters"}  # a shared stack's DLQ may hold a message by now (test_admin_keys)
    assert body["status"] == ("degraded" if failing else "healthy")
    assert response.headers["x-request-id"]


def test_sync_echo_returns_params_and_records_the_execution(stack: Stack) -> None:
    response = stack.admin.post("/v1/commands/echo", json={"message": "hello", "data": {"n": 1.5}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["command"] == "echo"
    assert body["result"] == {"message": "hello", "data": {"n": 1.5}}
    assert response.headers["x-request-id"]
    execution = stack.admin.get(f"/v1/executions/{body['execution_id']}").json()
    assert execution["status"] == "succeeded"
    assert execution["attempts"] == 1
    assert execution["result"] == body["result"]


def test_key_without_permission_gets_403_and_sees_only_its_commands(stack: Stack) -> None:
    key = stack.create_key(["commands.list", "commands.run:fail"])
    client = stack.client(key)
    assert_problem(client.post("/v1/commands/echo", json={}), 403, "FORBIDDEN")
    listed = client.get("/v1/commands")
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()["commands"]] == ["fail"]


def test_route_outside_the_policy_is_denied_by_the_gateway(stack: Stack) -> None:
    key = stack.create_key(["commands.run:echo"])
    response = stack.client(key).get("/v1/commands")
    assert_problem(response, 403, "FORBIDDEN")
    assert response.headers["x-amzn-errortype"] == "ACCESS_DENIED"
    # The same cached policy still allows the route it does cover.
    assert stack.client(key).post("/v1/commands/echo", json={}).status_code == 200


def test_list_commands_describes_params_schema(stack: Stack) -> None:
    commands = {c["name"]: c for c in stack.admin.get("/v1/commands").json()["commands"]}
    echo = commands["echo"]
    assert echo["params_schema"]["type"] == "object"
    assert "message" in echo["params_schema"]["properties"]
    assert echo["permission"] == "commands.run:echo"
    assert echo["modes"] == ["sync", "async"]
    assert echo["timeout_s"] <= 28


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "INVALID_JSON"),
        ("[1, 2]", 400, "INVALID_JSON"),
        ('{"message": 5}', 422, "VALIDATION_FAILED"),
        ('{"unexpected": true}', 422, "VALIDATION_FAILED"),
    ],
)
def test_bad_bodies_are_refused(stack: Stack, body: str, status: int, code: str) -> None:
    response = stack.admin.post("/v1/commands/echo", content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, status, code)
    if status == 422:
        assert problem["errors"] and {"loc", "msg"} <= set(problem["errors"][0])


def test_unknown_command_and_unknown_route_are_404(stack: Stack) -> None:
    assert_problem(stack.admin.post("/v1/commands/no-such-command", json={}), 404, "COMMAND_NOT_FOUND")
    assert_problem(stack.admin.get("/v1/nowhere"), 404, "NOT_FOUND")


def test_body_over_64_kib_is_413(stack: Stack) -> None:
    response = stack.admin.post("/v1/commands/echo", json={"message": "x" * (65 * 1024)})
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


def test_permanent_command_failure_is_problem_and_recorded(stack: Stack) -> None:
    problem = assert_problem(stack.admin.post("/v1/commands/fail", json={"mode": "permanent"}), 500, "COMMAND_FAILED")
    execution = stack.admin.get(f"/v1/executions/{problem['execution_id']}").json()
    assert execution["status"] == "failed"
    assert execution["error"]["code"] == "COMMAND_FAILED"


def test_async_echo_is_run_by_the_worker(stack: Stack) -> None:
    response = stack.admin.post("/v1/commands/echo", json={"message": "later"}, headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "respond-async"
    location = response.headers["location"]
    assert location == f"/v1/executions/{response.json()['execution_id']}"
    assert response.json()["status"] == "queued"
    done = wait_for(lambda: (e := stack.admin.get(location).json())["status"] == "succeeded" and e)
    assert done["result"] == {"message": "later"}
    assert done["attempts"] == 1


def test_transient_failure_is_retried_through_sqs(stack: Stack) -> None:
    response = stack.admin.post(
        "/v1/commands/fail", json={"mode": "transient", "times": 1}, headers={"Prefer": "respond-async"}
    )
    location = response.headers["location"]
    done = wait_for(lambda: (e := stack.admin.get(location).json())["status"] == "succeeded" and e)
    assert done["attempts"] == 2


def test_exhausted_retries_dead_letter_the_execution(stack: Stack) -> None:
    response = stack.admin.post("/v1/commands/fail", json={"mode": "transient"}, headers={"Prefer": "respond-async"})
    execution_id = response.json()["execution_id"]
    done = wait_for(
        lambda: (e := stack.admin.get(f"/v1/executions/{execution_id}").json())["status"] == "dead_lettered" and e
    )
    assert done["attempts"] == 2
    assert done["error"]["code"] == "COMMAND_TRANSIENT_FAILURE"
    sqs = stack.aws("sqs")
    dlq = stack.resource("ExecutionsDLQ")

    def in_dlq() -> bool:
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return any(json.loads(m["Body"]).get("execution_id") == execution_id for m in messages)

    wait_for(in_dlq)


def test_executed_events_are_counted_once_by_the_event_processor(stack: Stack) -> None:
    dynamodb = stack.aws("dynamodb")
    table = stack.resource("ControlTable")

    def count() -> int:
        item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "stats#sleep"}}, ConsistentRead=True).get("Item")
        return int(item["succeeded"]["N"]) if item and "succeeded" in item else 0

    before = count()
    for _ in range(3):
        assert stack.admin.post("/v1/commands/sleep", json={"seconds": 0}).status_code == 200
    wait_for(lambda: count() >= before + 3)
    assert count() == before + 3


def test_concurrent_requests_run_in_separate_environments(stack: Stack) -> None:
    def run(_: int) -> int:
        return stack.admin.post("/v1/commands/sleep", json={"seconds": 1.0}).status_code

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(run, range(3))) == [200, 200, 200]
    started = [p for p in stack.log_dir.glob("ApiFunction-*.log") if "INIT REPORT" in p.read_text()]
    assert len(started) == 3


def test_openapi_description_is_open_and_lists_the_routes(stack: Stack) -> None:
    response = stack.client().get("/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v1/commands", "/v1/commands/{name}", "/v1/executions/{execution_id}", "/v1/health"} <= set(paths)


def test_command_past_its_timeout_is_504_and_recorded_failed(stack: Stack) -> None:
    problem = assert_problem(stack.admin.post("/v1/commands/sleep", json={"seconds": 6}), 504, "COMMAND_TIMEOUT")
    execution = stack.admin.get(f"/v1/executions/{problem['execution_id']}").json()
    assert execution["status"] == "failed"
    assert execution["error"]["code"] == "COMMAND_TIMEOUT"


def test_command_own_4xx_is_answered_as_problem(stack: Stack) -> None:
    problem = assert_problem(
        stack.admin.post("/v1/commands/fail", json={"mode": "permanent", "status": 409}), 409, "COMMAND_FAILED"
    )
    assert stack.admin.get(f"/v1/executions/{problem['execution_id']}").json()["status"] == "failed"


def test_result_over_256_kib_fails_the_execution(stack: Stack) -> None:
    problem = assert_problem(stack.admin.post("/v1/commands/blob", json={"kib": 300}), 500, "RESULT_TOO_LARGE")
    execution = stack.admin.get(f"/v1/executions/{problem['execution_id']}").json()
    assert execution["error"]["code"] == "RESULT_TOO_LARGE"
    assert stack.admin.post("/v1/commands/blob", json={"kib": 200}).status_code == 200


def test_made_up_command_names_share_one_bucket_and_get_404(stack: Stack) -> None:
    from tests.integration.test_rate_limits import key_with_limit

    client = stack.client(key_with_limit(stack, 3, 60))
    statuses = [client.post(f"/v1/commands/made-up-{i}{'x' * 3000}", json={}).status_code for i in range(4)]
    assert statuses == [404, 404, 404, 429]  # not a fresh quota per invented name, and never a 500
