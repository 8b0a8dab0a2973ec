"""The api function end to end in process: routing, parameters, the layer's rules and problem+json answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.api.conftest import SOURCE_IP, Answer, Api, Context, principal


def test_app_reads_as_a_table_of_contents() -> None:
    from cmdgate_local.openapi_export import ROOT

    assert len((ROOT / "functions" / "api" / "app.py").read_text().splitlines()) <= 100


def run(api: Api, name: str = "echo", **kwargs: Any) -> Answer:
    """POST /v1/commands/{name} as API Gateway routes it."""
    return api.call(
        "POST", f"/v1/commands/{name}", resource="/v1/commands/{name}", path_parameters={"name": name}, **kwargs
    )


def test_health_is_open_and_carries_a_request_id(api: Api) -> None:
    answer = api.call("GET", "/v1/health", caller=None)
    assert answer.status == 200
    assert answer.json()["status"] == "healthy"
    assert answer.headers["x-request-id"] == "req-1"
    assert "ratelimit" not in answer.headers


def test_a_run_is_answered_with_rate_limit_fields(api: Api) -> None:
    answer = run(
        api,
        body='{"message": "yo"}',
    )
    assert answer.status == 200, answer.body
    assert answer.json()["result"] == {"message": "yo"}
    assert answer.headers["ratelimit-policy"]
    assert answer.headers["ratelimit"]


def test_an_idempotency_key_replays_the_first_answer(api: Api) -> None:
    first, second = (run(api, headers={"Idempotency-Key": '"order-1"'}, body="{}") for _ in range(2))
    assert first.status == second.status == 200
    assert first.json()["execution_id"] == second.json()["execution_id"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert len(api.services.execution_store.items) == 1


def test_a_command_that_requires_a_key_refuses_a_run_without_one(api: Api) -> None:
    refused = run(api, "transfer")
    assert (refused.status, refused.json()["code"]) == (400, "IDEMPOTENCY_KEY_MISSING")
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://cmdgate.dev/errors#idempotency-key-missing"
    accepted = run(api, "transfer", headers={"Idempotency-Key": "t-1"})
    assert accepted.status == 200


def test_a_bad_idempotency_key_is_the_layers_400_not_a_powertools_422(api: Api) -> None:
    answer = run(
        api,
        headers={"Idempotency-Key": "has space"},
    )
    assert (answer.status, answer.json()["code"]) == (400, "INVALID_IDEMPOTENCY_KEY")


def test_an_async_run_points_at_its_execution(api: Api) -> None:
    answer = run(
        api,
        headers={"Prefer": "respond-async"},
    )
    assert answer.status == 202
    execution_id = answer.json()["execution_id"]
    assert answer.headers["location"] == f"/v1/executions/{execution_id}"
    assert api.services.queue.sent == [{"execution_id": execution_id}]
    polled = api.call(
        "GET",
        answer.headers["location"],
        resource="/v1/executions/{execution_id}",
        path_parameters={"execution_id": execution_id},
    )
    assert (polled.status, polled.json()["status"]) == (200, "queued")
    record = api.services.execution_store.items[execution_id]
    # Every run keeps who asked, which request and from where (the audit trail reads them off the record).
    assert (record.principal_id, record.audit["request_id"], record.audit["source_ip"]) == (
        "key:admin",
        "req-1",
        SOURCE_IP,
    )


@pytest.fixture
def small_bodies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from cmdgate.config import get_settings

    monkeypatch.setenv("MAX_BODY_BYTES", "16")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("small_bodies")
def test_a_body_over_the_limit_is_413_before_it_is_parsed(api: Api) -> None:
    answer = run(
        api,
        body='{"m":"' + "é" * 5 + '"}',  # 13 characters of text, 18 bytes of UTF-8
    )
    assert (answer.status, answer.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    within = run(api, body="{}")
    assert within.status == 200


def test_list_parameters_are_the_layers_to_check(api: Api) -> None:
    listed = api.call("GET", "/v1/commands", query={"limit": "1"})
    assert listed.status == 200
    assert [c["name"] for c in listed.json()["commands"]] == ["echo"]
    assert listed.json()["next_cursor"]
    assert api.call("GET", "/v1/commands", query={"limit": "0"}).json()["code"] == "BAD_REQUEST"
    assert api.call("GET", "/v1/commands", query={"cursor": "bm9wZQ"}).json()["code"] == "INVALID_CURSOR"


def test_a_repeated_header_is_a_problem_in_our_format(api: Api) -> None:
    # Powertools validates declared parameters: a header sent twice is a list, refused as the layer's 400.
    event_headers = {"If-Match": '"1"'}
    answer = api.call(
        "DELETE", "/v1/state/k", resource="/v1/state/{key}", path_parameters={"key": "k"}, headers=event_headers
    )
    assert answer.status in (412, 428)  # one value: the layer decides
    raw = api.app.lambda_handler(
        {
            "resource": "/v1/state/{key}",
            "path": "/v1/state/k",
            "httpMethod": "DELETE",
            "headers": {"If-Match": '"2"'},
            "multiValueHeaders": {"If-Match": ['"1"', '"2"']},
            "pathParameters": {"key": "k"},
            "requestContext": {"requestId": "req-2", "authorizer": principal("admin")},
            "body": None,
        },
        Context(),
    )
    problem = json.loads(raw["body"])
    assert (raw["statusCode"], problem["code"]) == (400, "BAD_REQUEST")
    assert raw["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert problem["errors"] == [{"loc": ["header", "if-match"], "msg": "Input should be a valid string"}]


STATE: dict[str, Any] = {"resource": "/v1/state/{key}", "path_parameters": {"key": "prefs"}}


def test_state_create_conditional_get_patch_and_delete(api: Api) -> None:
    created = api.call("PUT", "/v1/state/prefs", headers={"If-None-Match": "*"}, body='{"theme": "dark"}', **STATE)
    assert created.status == 201
    assert (created.headers["etag"], created.headers["state-version"]) == ('"1"', "1")
    assert created.headers["last-modified"] == "Tue, 01 Dec 2026 10:00:00 GMT"
    assert created.headers["gist-synced-version"] == "0"
    again = api.call("PUT", "/v1/state/prefs", headers={"If-None-Match": "*"}, body="{}", **STATE)
    assert (again.status, again.json()["code"]) == (412, "PRECONDITION_FAILED")

    unchanged = api.call("GET", "/v1/state/prefs", headers={"If-None-Match": '"1"'}, **STATE)
    assert (unchanged.status, unchanged.body, unchanged.headers["etag"]) == (304, "", '"1"')

    wrong_type = api.call("PATCH", "/v1/state/prefs", headers={"If-Match": '"1"'}, body="{}", **STATE)
    assert (wrong_type.status, wrong_type.headers["accept-patch"]) == (415, "application/merge-patch+json")
    patched = api.call(
        "PATCH",
        "/v1/state/prefs",
        body='{"lang": "en"}',
        **STATE,
        headers={"If-Match": '"1"', "Content-Type": "application/merge-patch+json; charset=utf-8"},
    )
    assert patched.status == 200
    assert patched.json() == {"theme": "dark", "lang": "en"}
    assert patched.headers["etag"] == '"2"'
    assert api.services.states.remaining[-1] is not None
    assert api.services.states.remaining[-1]() == 12.0  # writes are capped by the invocation's time left

    old = api.call("GET", "/v1/state/prefs", query={"version": "1"}, **STATE)
    assert (old.status, old.json(), old.headers["state-version"]) == (200, {"theme": "dark"}, "1")
    deleted = api.call("DELETE", "/v1/state/prefs", headers={"If-Match": '"2"'}, **STATE)
    assert (deleted.status, deleted.body, deleted.headers["state-version"]) == (204, "", "3")


@pytest.mark.parametrize("version", ["0", "-1", "1.5", "abc", "1000000000000"])
def test_a_bad_version_is_400(api: Api, version: str) -> None:
    answer = api.call("GET", "/v1/state/prefs", query={"version": version}, **STATE)
    assert (answer.status, answer.json()["code"]) == (400, "BAD_REQUEST")


@pytest.mark.parametrize("body", ['{"version": 0}', '{"version": true}', '{"version": "1"}', "[]"])
def test_restore_names_a_positive_version(api: Api, body: str) -> None:
    path: dict[str, Any] = {"resource": "/v1/state/{key}/restore", "path_parameters": {"key": "prefs"}}
    answer = api.call("POST", "/v1/state/prefs/restore", body=body, **path)
    assert (answer.status, answer.json()["code"]) == (422, "VALIDATION_FAILED")
    assert answer.json()["errors"] == [{"loc": ["body", "version"], "msg": "a positive integer"}]


def test_restore_and_history(api: Api) -> None:
    api.call("PUT", "/v1/state/prefs", headers={"If-None-Match": "*"}, body="1", **STATE)
    api.call("PUT", "/v1/state/prefs", headers={"If-Match": '"1"'}, body="2", **STATE)
    path: dict[str, Any] = {"resource": "/v1/state/{key}/restore", "path_parameters": {"key": "prefs"}}
    restored = api.call("POST", "/v1/state/prefs/restore", body='{"version": 1}', **path)
    assert (restored.status, restored.json(), restored.headers["state-version"]) == (200, 1, "3")
    history = api.call(
        "GET", "/v1/state/prefs/history", resource="/v1/state/{key}/history", path_parameters={"key": "prefs"}
    )
    assert [v["version"] for v in history.json()["versions"]] == [3, 2, 1]


def test_state_permissions_are_per_key(api: Api) -> None:
    reader = principal("state.read:public.*")
    allowed = api.call(
        "GET", "/v1/state/public.x", resource="/v1/state/{key}", path_parameters={"key": "public.x"}, caller=reader
    )
    assert allowed.json()["code"] == "STATE_NOT_FOUND"  # past the permission check
    refused = api.call(
        "PUT",
        "/v1/state/public.x",
        resource="/v1/state/{key}",
        path_parameters={"key": "public.x"},
        headers={"If-None-Match": "*"},
        body="1",
        caller=reader,
    )
    assert (refused.status, refused.json()["code"]) == (403, "FORBIDDEN")
    other = api.call("GET", "/v1/state/prefs", caller=reader, **STATE)
    assert other.status == 403


def test_an_empty_state_body_is_invalid_json(api: Api) -> None:
    answer = api.call("PUT", "/v1/state/prefs", headers={"If-None-Match": "*"}, body="  ", **STATE)
    assert (answer.status, answer.json()["code"]) == (400, "INVALID_JSON")


def test_admin_keys_and_dead_letters(api: Api) -> None:
    created = api.call("POST", "/v1/admin/keys", body='{"name": "ci", "permissions": ["commands.list"]}')
    assert created.status == 201
    assert created.headers["cache-control"] == "no-store"
    key_id = created.json()["key_id"]
    assert [k["key_id"] for k in api.call("GET", "/v1/admin/keys").json()["keys"]] == [key_id]
    revoked = api.call(
        "DELETE", f"/v1/admin/keys/{key_id}", resource="/v1/admin/keys/{key_id}", path_parameters={"key_id": key_id}
    )
    assert revoked.status == 204
    bad = api.call("POST", "/v1/admin/keys", body='{"name": ""}')
    assert (bad.status, bad.json()["code"]) == (422, "VALIDATION_FAILED")
    assert api.call("GET", "/v1/admin/dlq").json() == {"executions": [], "next_cursor": None}
    assert api.call("POST", "/v1/admin/dlq/redrive", body='{"execution_ids": ["abc"]}').json() == {
        "redriven": [],
        "skipped": ["abc"],
    }
    assert api.call("GET", "/v1/admin/health").json()["status"] == "healthy"


def test_admin_routes_refuse_other_callers(api: Api) -> None:
    answer = api.call("GET", "/v1/admin/keys", caller=principal("commands.list"))
    assert (answer.status, answer.json()["code"]) == (403, "FORBIDDEN")
    assert answer.headers["ratelimit"]  # refusals count and carry the fields too


def test_state_recovery_is_admin_only_bounded_by_the_request_and_resumed_from_next(api: Api) -> None:
    refused = api.call("POST", "/v1/admin/state/recover", body="{}", caller=principal("state.write:*"))
    assert (refused.status, refused.json()["code"]) == (403, "FORBIDDEN")
    first = api.call("POST", "/v1/admin/state/recover", body='{"namespaces": ["team-a"]}')
    assert first.status == 200, first.body
    assert first.json() == {"done": False, "next": {"gists": ["g2"], "skip": 0}, "counts": {"keys_recovered": 1}}
    last = api.call("POST", "/v1/admin/state/recover", body='{"gists": ["g2"], "skip": 3}')
    assert last.json()["done"] is True and last.json()["next"] is None
    calls = api.services.state_recovery.calls
    assert calls[0]["namespaces"] == frozenset({"team-a"}) and calls[0]["gists"] is None
    assert (calls[1]["gists"], calls[1]["skip"]) == (["g2"], 3)
    # The context has 12 s left: the step keeps 8 s of it to answer.
    assert all(call["budget_s"] == 4.0 for call in calls)


@pytest.mark.parametrize(
    "body",
    [
        '{"gists": ["../etc"]}',
        '{"namespaces": ["Team"]}',
        '{"skip": -1}',
        '{"max_revisions": 0}',
        '{"skip": "1"}',
        '{"cursor": "x"}',
        '{"gists": ' + json.dumps(["a"] * 1001) + "}",
    ],
)
def test_state_recovery_refuses_hostile_bodies_with_422(api: Api, body: str) -> None:
    answer = api.call("POST", "/v1/admin/state/recover", body=body)
    assert answer.status == 422, answer.body
    assert api.services.state_recovery.calls == []


def test_the_rate_limiter_refuses_with_the_iana_type(api: Api) -> None:
    from routes import services as seam
    from tests.unit.api.fakes import FakeServices

    seam.use(FakeServices(quota=1))
    assert api.call("GET", "/v1/commands").status == 200
    refused = api.call("GET", "/v1/commands")
    assert refused.status == 429
    assert refused.json()["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert int(refused.headers["retry-after"]) >= 1


def test_unknown_routes_and_missing_principals(api: Api) -> None:
    missing = api.call("GET", "/v1/nope")
    assert (missing.status, missing.json()["code"]) == (404, "NOT_FOUND")
    anonymous = api.call("GET", "/v1/commands", caller=None)
    assert (anonymous.status, anonymous.json()["code"]) == (401, "UNAUTHORIZED")


def test_an_unexpected_error_is_a_500_problem_with_nothing_internal(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("secret-host.internal exploded")

    monkeypatch.setattr(api.services.executions, "list_commands", boom)
    answer = api.call("GET", "/v1/commands")
    assert (answer.status, answer.json()["code"]) == (500, "INTERNAL_ERROR")
    assert "secret-host" not in answer.body
    assert answer.headers["ratelimit"]


@pytest.mark.parametrize(
    ("code", "status"),
    [("ProvisionedThroughputExceededException", 400), ("ThrottlingException", 400), ("InternalServerError", 500)],
)
def test_aws_throttling_past_botocores_retries_is_a_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch, code: str, status: int
) -> None:
    from botocore.exceptions import ClientError

    def throttled(*_: object, **__: object) -> None:
        raise ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Query")

    monkeypatch.setattr(api.services.executions, "list_commands", throttled)
    answer = api.call("GET", "/v1/commands")
    assert (answer.status, answer.json()["code"]) == (503, "DEPENDENCY_UNAVAILABLE")
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "1"


def test_throttling_wrapped_by_the_idempotency_layer_is_a_503_too(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
    from botocore.exceptions import ClientError

    def wrapped(*_: object, **__: object) -> None:
        throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "PutItem")
        raise IdempotencyPersistenceLayerError("Failed to save in progress record to idempotency store") from throttled

    monkeypatch.setattr(api.services.executions, "list_commands", wrapped)
    answer = api.call("GET", "/v1/commands")
    assert (answer.status, answer.headers["retry-after"]) == (503, "1")


def test_an_aws_refusal_that_is_not_throttling_stays_a_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    def refused(*_: object, **__: object) -> None:
        raise ClientError({"Error": {"Code": "ValidationException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Q")

    monkeypatch.setattr(api.services.executions, "list_commands", refused)
    assert api.call("GET", "/v1/commands").status == 500


def test_a_base64_body_is_the_body_the_gate_checked(api: Api) -> None:
    """API Gateway base64-encodes binary media types: the route must read what the body gate read."""
    answer = run(api, body='{"message": "b64"}', base64_body=True)
    assert answer.status == 200, answer.body
    assert answer.json()["result"] == {"message": "b64"}


def execution_call(api: Api, method: str, execution_id: str, suffix: str = "", **kwargs: Any) -> Answer:
    resource = "/v1/executions/{execution_id}" + suffix
    return api.call(
        method,
        f"/v1/executions/{execution_id}{suffix}",
        resource=resource,
        path_parameters={"execution_id": execution_id},
        **kwargs,
    )


@pytest.mark.parametrize("wait", ["21", "-1", "1.5", "x", "٣", "999"])
def test_a_bad_wait_is_400(api: Api, wait: str) -> None:
    execution_id = run(api, headers={"Prefer": "respond-async"}).json()["execution_id"]
    answer = execution_call(api, "GET", execution_id, query={"wait": wait})
    assert (answer.status, answer.json()["code"]) == (400, "BAD_REQUEST")
    assert answer.headers["content-type"] == "application/problem+json"


def test_wait_on_a_finished_execution_answers_at_once(api: Api) -> None:
    execution_id = run(api).json()["execution_id"]
    answer = execution_call(api, "GET", execution_id, query={"wait": "20"})
    assert (answer.status, answer.json()["status"]) == (200, "succeeded")


def test_cancel_route_cancels_a_queued_execution_and_409s_a_finished_one(api: Api) -> None:
    queued = run(api, headers={"Prefer": "respond-async"}).json()["execution_id"]
    answer = execution_call(api, "POST", queued, "/cancel")
    assert (answer.status, answer.json()["status"], answer.json()["cancel_requested"]) == (200, "cancelled", True)
    finished = run(api).json()["execution_id"]
    refused = execution_call(api, "POST", finished, "/cancel")
    assert (refused.status, refused.json()["code"]) == (409, "EXECUTION_FINISHED")
    unknown = execution_call(api, "POST", "nope", "/cancel")
    assert (unknown.status, unknown.json()["code"]) == (404, "EXECUTION_NOT_FOUND")


def test_handler_latency_leaves_out_a_long_polls_wait(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    import time
    from types import SimpleNamespace

    from routes.request import add_waited, report_handler_latency

    add_waited(5.0)
    own_ms = report_handler_latency(time.monotonic() - 5.2, SimpleNamespace(function_version="7"))  # type: ignore[arg-type]
    assert 150 <= own_ms < 1000
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emf["HandlerLatency"] == [own_ms]
    assert emf["ExecutedVersion"] == "7"
    assert ["ExecutedVersion", "service"] in emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert report_handler_latency(time.monotonic(), SimpleNamespace(function_version="7")) < 150  # type: ignore[arg-type]


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_a_rate_limit_refusal_is_counted(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    from routes import services as seam
    from tests.unit.api.fakes import FakeServices

    seam.use(FakeServices(quota=1))
    assert api.call("GET", "/v1/commands").status == 200
    assert not any("RateLimitRefused" in emf for emf in emf_lines(capsys.readouterr().out))
    assert api.call("GET", "/v1/commands").status == 429
    assert [emf["RateLimitRefused"] for emf in emf_lines(capsys.readouterr().out) if "RateLimitRefused" in emf] == [
        [1.0]
    ]


def test_each_request_reports_its_latency_per_route(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    assert api.call("GET", "/v1/commands").status == 200
    route = [emf for emf in emf_lines(capsys.readouterr().out) if "RouteLatency" in emf]
    assert len(route) == 1 and route[0]["route"] == "GET /v1/commands"
    assert route[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["route", "service"]]
