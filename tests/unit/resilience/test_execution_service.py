"""ExecutionService on a moto table shaped like ExecutionsTable, with recording fake queues."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from cmdgate import errors
from cmdgate.auth.permissions import Principal
from cmdgate.commands import (
    CommandCancelled,
    CommandContext,
    CommandError,
    CommandRegistry,
    DependencyRefused,
    TransientCommandError,
    command,
)
from cmdgate.executions import (
    AttemptInProgress,
    ExecutionService,
    ExecutionStore,
    MessageQueue,
    PoisonMessage,
    RetryableFailure,
)
from cmdgate.executions.model import Execution
from cmdgate.executions.secrets import ParamSecrets
from cmdgate.executions.service import MAX_WAIT_READS

ADMIN = Principal("key:admin", ("admin",))
ALICE = Principal("key:alice", ("commands.run:*",))
BOB = Principal("key:bob", ("commands.run:greet",))
NOBODY = Principal("key:nobody", ())
MAX_RECEIVE_COUNT = 3
NOW = 1_700_000_000.0
TTL_S = 3600
RETRY_BASE_S = 2.0
RETRY_CAP_S = 5.0


class RecordingQueue(MessageQueue):
    """Keeps what would have gone to SQS; can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(sqs=None, queue_url="fake://queue")
        self.sent: list[dict[str, Any]] = []
        self.delays: list[int] = []
        self.visibility: list[tuple[str, int]] = []
        self.fail = fail

    def send(self, message: dict[str, Any], delay_s: int = 0) -> str:
        if self.fail:
            raise ConnectionError("sqs endpoint unreachable: secret-host.internal")
        self.sent.append(json.loads(json.dumps(message)))
        self.delays.append(delay_s)
        return f"msg-{len(self.sent)}"

    def change_visibility(self, receipt_handle: str, visibility_s: int) -> None:
        self.visibility.append((receipt_handle, visibility_s))


class GreetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="world", max_length=20)
    times: int = Field(default=1, ge=1, le=3)


class KeyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str


class Harness:
    def __init__(self, table: Any, registry: CommandRegistry, runs: dict[str, int]) -> None:
        self.table = table
        self.store = ExecutionStore(table)
        self.executions = RecordingQueue()
        self.events = RecordingQueue()
        self.registry = registry
        self.runs = runs
        self.alerts: list[tuple[str, str, str]] = []
        self.service = ExecutionService(
            self.store,
            self.executions,
            self.events,
            registry,
            max_receive_count=MAX_RECEIVE_COUNT,
            execution_ttl_s=TTL_S,
            retry_base_s=RETRY_BASE_S,
            retry_cap_s=RETRY_CAP_S,
            alert=lambda *alert: self.alerts.append(alert),
            clock=lambda: NOW,
            rand=lambda: 0.999,  # full jitter at its ceiling: the delays are known
        )

    def message_for(self, execution_id: str) -> str:
        return json.dumps({"execution_id": execution_id})

    def queued_ids(self) -> list[str]:
        return [m["execution_id"] for m in self.executions.sent]

    def record(self, execution_id: str) -> Execution:
        found = self.store.get(execution_id)
        assert found is not None
        return found


@pytest.fixture
def h(table_like: Callable[[str], Any]) -> Harness:
    registry = CommandRegistry()
    runs: dict[str, int] = {}

    def count(name: str) -> None:
        runs[name] = runs.get(name, 0) + 1

    @command("greet", description="Say hello.", params=GreetParams, retry_safe=True, registry=registry)
    def greet(params: GreetParams, context: CommandContext) -> dict[str, Any]:
        count("greet")
        return {"greeting": " ".join([f"hello {params.name}"] * params.times), "attempt": context.attempt}

    @command("conflict", description="Always refuses.", registry=registry)
    def conflict(params: BaseModel, context: CommandContext) -> None:
        count("conflict")
        raise CommandError("already done", status=409, code="ALREADY_DONE")

    @command("flaky", description="Always fails transiently.", registry=registry)
    def flaky(params: BaseModel, context: CommandContext) -> None:
        count("flaky")
        raise TransientCommandError("try later")

    @command("flaky_once", description="Fails on the first attempt only.", registry=registry)
    def flaky_once(params: BaseModel, context: CommandContext) -> dict[str, int]:
        count("flaky_once")
        if context.attempt == 1:
            raise TransientCommandError("first attempt fails")
        return {"attempt": context.attempt}

    @command("batch", description="Async only.", modes=("async",), timeout_s=300, registry=registry)
    def batch(params: BaseModel, context: CommandContext) -> str:
        count("batch")
        return "batched"

    @command("quick", description="Sync only.", modes=("sync",), registry=registry)
    def quick(params: BaseModel, context: CommandContext) -> str:
        count("quick")
        return "quick"

    return Harness(table_like("ExecutionsTable"), registry, runs)


# -- submit: sync ----------------------------------------------------------------


def test_sync_success(h: Harness) -> None:
    submission = h.service.submit(ALICE, "greet", '{"name": "ada", "times": 2}', prefer_async=False)
    assert submission.status_code == 200
    execution_id = submission.body["execution_id"]
    assert submission.body == {
        "execution_id": execution_id,
        "command": "greet",
        "status": "succeeded",
        "result": {"greeting": "hello ada hello ada", "attempt": 1},
    }
    assert submission.headers == {}
    assert submission.to_http("req-1")["body"] == submission.body  # only problems carry request_id
    record = h.record(execution_id)
    assert (record.status, record.mode, record.attempts, record.principal_id) == ("succeeded", "sync", 1, "key:alice")
    assert record.params == {"name": "ada", "times": 2}
    assert record.result == {"greeting": "hello ada hello ada", "attempt": 1}
    assert record.started_at is not None
    assert record.finished_at is not None
    assert record.expires_at == int(NOW) + TTL_S
    assert h.executions.sent == []
    assert h.runs == {"greet": 1}


@pytest.mark.parametrize("body", [None, "", "   ", "{}"])
def test_empty_body_means_default_params(h: Harness, body: str | None) -> None:
    submission = h.service.submit(ALICE, "greet", body, prefer_async=False)
    assert submission.body["result"]["greeting"] == "hello world"


def test_sync_command_error_is_answered_with_its_status_and_recorded(h: Harness) -> None:
    # A command that started has an outcome, not an exception: this is what idempotency stores.
    submission = h.service.submit(ALICE, "conflict", "{}", prefer_async=False)
    assert submission.status_code == 409
    assert submission.content_type == "application/problem+json"
    execution_id = submission.body["execution_id"]
    assert submission.body["status"] == 409
    assert submission.body["code"] == "ALREADY_DONE"
    assert submission.body["detail"] == "already done"
    assert submission.body["type"].startswith("https://")
    http = submission.to_http()
    assert http["status"] == 409
    assert http["headers"]["Content-Type"] == "application/problem+json"
    assert "request_id" not in http["body"]
    assert submission.to_http("req-1")["body"] == {**submission.body, "request_id": "req-1"}
    record = h.record(execution_id)
    assert record.status == "failed"
    assert record.lease_until is None
    assert record.error is not None
    assert (record.error.status, record.error.code) == (409, "ALREADY_DONE")
    assert [e["status"] for e in h.events.sent] == ["failed"]


def test_sync_unexpected_failure_is_500_without_details(h: Harness) -> None:
    @command("crash", description="Raises something unexpected.", registry=h.registry)
    def crash(params: BaseModel, context: CommandContext) -> None:
        raise RuntimeError("db password is hunter2")

    submission = h.service.submit(ALICE, "crash", None, prefer_async=False)
    assert submission.status_code == 500
    assert submission.body["code"] == "COMMAND_FAILED"
    assert "hunter2" not in json.dumps(submission.body)
    assert "RuntimeError" not in json.dumps(submission.body)
    assert h.record(submission.body["execution_id"]).status == "failed"


def test_sync_open_circuit_is_raised_not_answered(h: Harness) -> None:
    @command("pay", description="Calls a downstream behind a breaker.", registry=h.registry)
    def pay(params: BaseModel, context: CommandContext) -> None:
        raise DependencyRefused("payments circuit open", retry_after_s=12)

    # Raised (so idempotency does not store it and a retry may run), with Retry-After.
    with pytest.raises(errors.DependencyUnavailable) as raised:
        h.service.submit(ALICE, "pay", None, prefer_async=False)
    problem = raised.value
    assert (problem.status, problem.code) == (503, "DEPENDENCY_UNAVAILABLE")
    assert problem.headers == {"Retry-After": "12"}
    execution_id = problem.extensions["execution_id"]
    record = h.record(execution_id)
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.code == "DEPENDENCY_UNAVAILABLE"


def test_async_open_circuit_is_retried(h: Harness) -> None:
    @command("pay", description="Calls a downstream behind a breaker.", registry=h.registry)
    def pay(params: BaseModel, context: CommandContext) -> None:
        raise DependencyRefused("payments circuit open", retry_after_s=12)

    execution_id = submit_async(h, "pay")
    with pytest.raises(RetryableFailure):
        h.service.process_message(h.message_for(execution_id), receive_count=1)
    assert h.record(execution_id).status == "queued"
    assert h.events.sent == []


# -- submit: refusals before anything runs ------------------------------------------


@pytest.mark.parametrize(
    ("principal", "name"), [(NOBODY, "no-such-command"), (BOB, "no-such-command"), (BOB, "conflict")]
)
def test_forbidden_before_not_found(h: Harness, principal: Principal, name: str) -> None:
    with pytest.raises(errors.Forbidden) as raised:
        h.service.submit(principal, name, "{}", prefer_async=False)
    assert raised.value.status == 403
    assert h.table.scan()["Count"] == 0


def test_unknown_command_is_404_for_admin(h: Harness) -> None:
    with pytest.raises(errors.CommandNotFound) as raised:
        h.service.submit(ADMIN, "no-such-command", "{}", prefer_async=False)
    assert raised.value.status == 404
    assert raised.value.code == "COMMAND_NOT_FOUND"


def test_permission_is_per_command(h: Harness) -> None:
    assert h.service.submit(BOB, "greet", "{}", prefer_async=False).status_code == 200
    assert h.service.submit(ADMIN, "greet", "{}", prefer_async=False).status_code == 200


@pytest.mark.parametrize("body", ["[1, 2]", "null", '"text"', "42", "true", "{not json", "{'a': 1}"])
def test_body_that_is_not_a_json_object_is_400(h: Harness, body: str) -> None:
    with pytest.raises(errors.InvalidJson) as raised:
        h.service.submit(ALICE, "greet", body, prefer_async=False)
    assert raised.value.status == 400
    assert h.table.scan()["Count"] == 0
    assert h.runs == {}


def test_params_failing_the_schema_are_422_without_echoing_input(h: Harness) -> None:
    body = json.dumps({"name": "hunter2-" * 5, "times": 9, "password": "s3cr3t-value"})
    with pytest.raises(errors.ValidationFailed) as raised:
        h.service.submit(ALICE, "greet", body, prefer_async=True)
    problem = raised.value.to_problem("req-1")
    assert problem["status"] == 422
    assert problem["code"] == "VALIDATION_FAILED"
    assert all(set(e) == {"loc", "msg"} for e in problem["errors"])
    assert sorted(tuple(e["loc"]) for e in problem["errors"]) == [("name",), ("password",), ("times",)]
    text = json.dumps(problem)
    assert "hunter2" not in text
    assert "s3cr3t-value" not in text
    assert h.table.scan()["Count"] == 0
    assert h.executions.sent == []


# -- submit: async -------------------------------------------------------------------


def test_async_is_accepted_and_queued(h: Harness) -> None:
    submission = h.service.submit(ALICE, "greet", '{"name": "bo"}', prefer_async=True)
    execution_id = submission.body["execution_id"]
    assert submission.status_code == 202
    assert submission.body == {"execution_id": execution_id, "status": "queued"}
    assert submission.headers == {
        "Location": f"/v1/executions/{execution_id}",
        "Preference-Applied": "respond-async",
    }
    assert h.executions.sent == [{"execution_id": execution_id}]
    record = h.record(execution_id)
    assert (record.status, record.mode, record.attempts) == ("queued", "async", 0)
    assert record.params == {"name": "bo", "times": 1}
    assert h.runs == {}
    assert h.events.sent == []


def test_async_only_command_runs_async_without_prefer(h: Harness) -> None:
    submission = h.service.submit(ALICE, "batch", None, prefer_async=False)
    assert submission.status_code == 202
    assert submission.headers == {"Location": f"/v1/executions/{submission.body['execution_id']}"}
    assert "Preference-Applied" not in submission.headers
    assert h.queued_ids() == [submission.body["execution_id"]]
    assert h.runs == {}


def test_sync_only_command_ignores_prefer_async(h: Harness) -> None:
    submission = h.service.submit(ALICE, "quick", None, prefer_async=True)
    assert submission.status_code == 200
    assert submission.body["result"] == "quick"
    assert h.executions.sent == []


def test_queue_failure_is_503_and_the_execution_is_failed(h: Harness) -> None:
    h.executions.fail = True
    with pytest.raises(errors.DependencyUnavailable) as raised:
        h.service.submit(ALICE, "greet", "{}", prefer_async=True)
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}
    assert "secret-host" not in json.dumps(raised.value.to_problem())
    items = h.table.scan()["Items"]
    assert len(items) == 1
    record = Execution.from_item(items[0])
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.code == "QUEUE_UNAVAILABLE"


# -- process_message -------------------------------------------------------------------


def submit_async(h: Harness, name: str, body: str = "{}") -> str:
    execution_id: str = h.service.submit(ALICE, name, body, prefer_async=True).body["execution_id"]
    return execution_id


def test_worker_success(h: Harness) -> None:
    execution_id = submit_async(h, "greet", '{"name": "cy"}')
    h.service.process_message(h.message_for(execution_id), receive_count=1)
    record = h.record(execution_id)
    assert (record.status, record.attempts) == ("succeeded", 1)
    assert record.result == {"greeting": "hello cy", "attempt": 1}
    assert record.public_view()["result"] == record.result
    assert [{k: v for k, v in e.items() if k != "duration_ms"} for e in h.events.sent] == [
        {
            "type": "command.executed",
            "execution_id": execution_id,
            "command": "greet",
            "principal": "key:alice",
            "principal_id": "key:alice",
            "status": "succeeded",
            "attempts": 1,
            "callback": False,
        }
    ]
    assert isinstance(h.events.sent[0]["duration_ms"], float) and h.events.sent[0]["duration_ms"] >= 0


def test_permanent_failure_is_acknowledged(h: Harness) -> None:
    execution_id = submit_async(h, "conflict")
    h.service.process_message(h.message_for(execution_id), receive_count=1)  # no raise: SQS deletes it
    record = h.record(execution_id)
    assert record.status == "failed"
    assert record.error is not None
    assert (record.error.code, record.error.status) == ("ALREADY_DONE", 409)
    assert record.public_view()["error"] == {"code": "ALREADY_DONE", "detail": "already done", "status": 409}
    assert [e["status"] for e in h.events.sent] == ["failed"]


def test_transient_failure_is_retried_then_dead_lettered(h: Harness) -> None:
    execution_id = submit_async(h, "flaky")
    for receive_count in range(1, MAX_RECEIVE_COUNT):
        with pytest.raises(RetryableFailure):
            h.service.process_message(h.message_for(execution_id), receive_count=receive_count)
        record = h.record(execution_id)
        assert (record.status, record.attempts) == ("queued", receive_count)
        assert record.error is not None
        assert record.error.code == "COMMAND_TRANSIENT_FAILURE"
        assert record.finished_at is None
        assert h.events.sent == []

    with pytest.raises(RetryableFailure):
        h.service.process_message(h.message_for(execution_id), receive_count=MAX_RECEIVE_COUNT)
    record = h.record(execution_id)
    assert (record.status, record.attempts) == ("dead_lettered", MAX_RECEIVE_COUNT)
    assert record.finished_at is not None
    assert [e["status"] for e in h.events.sent] == ["dead_lettered"]
    assert h.runs == {"flaky": MAX_RECEIVE_COUNT}


def test_a_retry_that_succeeds_publishes_one_event(h: Harness) -> None:
    execution_id = submit_async(h, "flaky_once")
    with pytest.raises(RetryableFailure):
        h.service.process_message(h.message_for(execution_id), receive_count=1)
    h.service.process_message(h.message_for(execution_id), receive_count=2)
    record = h.record(execution_id)
    assert (record.status, record.attempts, record.result) == ("succeeded", 2, {"attempt": 2})
    assert [(e["status"], e["attempts"]) for e in h.events.sent] == [("succeeded", 2)]


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '"abc"', "{}", '{"execution_id": ""}', '{"execution_id": 42}', '{"execution_id": "0" }'],
)
def test_poison_messages_are_acknowledged_and_alerted(h: Harness, body: str) -> None:
    h.service.process_message(body, receive_count=1)  # no raise: SQS deletes it
    assert [name for name, _, _ in h.alerts] == ["poison_message"]


def test_a_message_whose_record_is_missing_is_acknowledged_and_alerted(h: Harness) -> None:
    h.service.process_message(h.message_for("abc123"), receive_count=1, receipt_handle="r1")
    assert h.alerts == [("poison_message", "abc123", "the message names an execution that has no record")]
    assert h.executions.visibility == []
    assert not issubclass(PoisonMessage, RetryableFailure)


def test_message_naming_an_unknown_command_fails_its_execution(h: Harness) -> None:
    h.store.create(
        Execution(
            execution_id="abc123",
            command="retired-command",
            principal_id="key:alice",
            mode="async",
            status="queued",
            created_at="2024-01-01T00:00:00.000Z",
        )
    )
    h.service.process_message(h.message_for("abc123"), receive_count=1)
    record = h.record("abc123")
    assert (record.status, record.error.code if record.error else None) == ("failed", "COMMAND_NOT_FOUND")


@pytest.mark.parametrize("name", ["greet", "conflict"])
def test_redelivery_of_a_finished_execution_does_not_run_it_again(h: Harness, name: str) -> None:
    execution_id = submit_async(h, name)
    h.service.process_message(h.message_for(execution_id), receive_count=1)
    before = h.record(execution_id)
    h.service.process_message(h.message_for(execution_id), receive_count=2)
    h.service.process_message(h.message_for(execution_id), receive_count=5)
    assert h.runs == {name: 1}
    assert h.record(execution_id) == before
    assert len(h.events.sent) == 1


def test_redelivery_of_a_dead_lettered_execution_is_acknowledged(h: Harness) -> None:
    execution_id = submit_async(h, "flaky")
    for receive_count in range(1, MAX_RECEIVE_COUNT + 1):
        with pytest.raises(RetryableFailure):
            h.service.process_message(h.message_for(execution_id), receive_count=receive_count)
    h.service.process_message(h.message_for(execution_id), receive_count=MAX_RECEIVE_COUNT + 1)
    assert h.runs == {"flaky": MAX_RECEIVE_COUNT}
    assert h.record(execution_id).status == "dead_lettered"


def test_one_event_per_finished_execution(h: Harness) -> None:
    finished = [
        h.service.submit(ALICE, "greet", "{}", prefer_async=False).body["execution_id"],
        submit_async(h, "greet"),
        submit_async(h, "conflict"),
    ]
    assert h.service.submit(ALICE, "conflict", "{}", prefer_async=False).status_code == 409
    for execution_id in finished[1:]:
        h.service.process_message(h.message_for(execution_id), receive_count=1)
    still_queued = submit_async(h, "batch")
    ids = [e["execution_id"] for e in h.events.sent]
    assert len(ids) == 4
    assert len(set(ids)) == 4
    assert set(finished) <= set(ids)
    assert still_queued not in ids
    assert all(e["type"] == "command.executed" for e in h.events.sent)


# -- get ---------------------------------------------------------------------------------


def test_get_shows_an_execution_to_its_creator_and_admin_only(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    assert h.service.get(ALICE, execution_id).execution_id == execution_id
    assert h.service.get(ADMIN, execution_id).execution_id == execution_id
    for other in (BOB, NOBODY, Principal("key:alice2", ("commands.run:*",))):
        with pytest.raises(errors.ExecutionNotFound) as raised:
            h.service.get(other, execution_id)
        assert raised.value.status == 404


@pytest.mark.parametrize("execution_id", ["", "0" * 65, "../etc/passwd", "abc-def", "a b", "deadbeef"])
def test_get_of_a_missing_or_malformed_id_is_404(h: Harness, execution_id: str) -> None:
    with pytest.raises(errors.ExecutionNotFound):
        h.service.get(ADMIN, execution_id)


def names(page: tuple[list[dict[str, Any]], str | None]) -> list[str]:
    return [c["name"] for c in page[0]]


def test_list_commands_shows_only_what_the_principal_may_run(h: Harness) -> None:
    assert h.service.list_commands(BOB) == ([h.registry.get("greet").describe()], None)  # type: ignore[union-attr]
    assert h.service.list_commands(NOBODY) == ([], None)
    everything = ["batch", "conflict", "flaky", "flaky_once", "greet", "quick"]
    assert names(h.service.list_commands(ADMIN)) == everything
    greet = h.service.list_commands(BOB)[0][0]
    assert greet["permission"] == "commands.run:greet"
    assert greet["modes"] == ["sync", "async"]
    assert greet["params_schema"]["properties"]["times"]["maximum"] == 3


def test_list_commands_pages_by_name(h: Harness) -> None:
    first = h.service.list_commands(ADMIN, limit=4)
    assert names(first) == ["batch", "conflict", "flaky", "flaky_once"]
    assert first[1] == "flaky_once"
    second = h.service.list_commands(ADMIN, limit=4, after=first[1])
    assert second == (second[0], None)
    assert names(second) == ["greet", "quick"]
    exact = h.service.list_commands(ADMIN, limit=6)
    assert exact[1] is None


# -- attempt leases ------------------------------------------------------------------------


def test_a_duplicate_delivery_while_an_attempt_holds_the_lease_is_retried_later(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    other_worker = h.store.begin_attempt(execution_id, lease_s=60, now=NOW)
    assert other_worker is not None
    with pytest.raises(AttemptInProgress):
        h.service.process_message(h.message_for(execution_id), receive_count=2)
    assert h.runs == {}
    record = h.record(execution_id)
    assert (record.status, record.attempts) == ("running", 1)


def test_an_expired_lease_is_taken_over_and_the_late_attempt_cannot_clobber_it(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    crashed = h.store.begin_attempt(execution_id, lease_s=10, now=NOW - 100)
    assert crashed is not None
    assert crashed.lease_until is not None
    assert crashed.lease_until < NOW
    h.service.process_message(h.message_for(execution_id), receive_count=2)
    record = h.record(execution_id)
    assert (record.status, record.attempts) == ("succeeded", 2)
    assert record.lease_until is None
    # The first worker wakes up and reports: its attempt no longer owns the record.
    assert not h.store.finish(execution_id, crashed.attempts, "failed")
    assert h.record(execution_id).status == "succeeded"
    assert [(e["status"], e["attempts"]) for e in h.events.sent] == [("succeeded", 2)]


def test_sync_runs_are_written_once_with_their_outcome(h: Harness) -> None:
    seen: list[tuple[Execution | None, Execution | None]] = []

    @command("peek", description="Looks at its own record.", registry=h.registry)
    def peek(params: BaseModel, context: CommandContext) -> str:
        # What a stray worker would get if it tried to claim this execution while it runs.
        seen.append((h.store.get(context.execution_id), h.store.begin_attempt(context.execution_id, 60, NOW)))
        return "ok"

    submission = h.service.submit(ALICE, "peek", None, prefer_async=False)
    assert submission.status_code == 200
    ((during, stolen),) = seen
    assert during is None  # nothing is written until the outcome is known
    assert stolen is None  # and nothing can be claimed meanwhile
    record = h.record(submission.body["execution_id"])
    assert (record.status, record.attempts, record.result) == ("succeeded", 1, "ok")
    assert record.finished_at is not None


# -- authorization of state keys: before the run or the queue, and again in the worker ------------


def with_touch(h: Harness) -> None:
    @command(
        "touch",
        description="Writes the key it names.",
        params=KeyParams,
        state_keys={"key": ("write",)},
        registry=h.registry,
    )
    def touch(params: KeyParams, context: CommandContext) -> str:
        h.runs["touch"] = h.runs.get("touch", 0) + 1
        return params.key


def test_a_state_key_outside_the_callers_scope_is_refused_before_anything_runs_or_is_queued(h: Harness) -> None:
    with_touch(h)
    caller = Principal("key:carol", ("commands.run:touch", "state.write:team-a.*"))
    with pytest.raises(errors.Forbidden, match="team-b"):
        h.service.submit(caller, "touch", '{"key": "team-b.x"}', prefer_async=True)
    with pytest.raises(errors.Forbidden):
        h.service.submit(caller, "touch", '{"key": "team-b.x"}', prefer_async=False)
    assert h.executions.sent == [] and h.runs == {}
    assert h.service.submit(caller, "touch", '{"key": "team-a.x"}', prefer_async=False).status_code == 200
    assert h.runs == {"touch": 1}


def test_the_worker_authorizes_again_with_the_permissions_the_record_kept(h: Harness) -> None:
    with_touch(h)
    caller = Principal("key:carol", ("commands.run:touch", "state.write:team-a.*"))
    queued = h.service.submit(caller, "touch", '{"key": "team-a.x"}', prefer_async=True)
    execution_id = queued.body["execution_id"]
    assert h.record(execution_id).permissions == caller.permissions
    # The kept permissions no longer cover the key (a record changed behind the api function's back).
    h.table.update_item(
        Key={"execution_id": execution_id},
        UpdateExpression="SET params_json = :p",
        ExpressionAttributeValues={":p": '{"key":"team-b.x"}'},
    )
    h.service.process_message(h.message_for(execution_id), receive_count=1)
    record = h.record(execution_id)
    assert record.status == "failed"
    assert record.error is not None and record.error.code == "FORBIDDEN"
    assert h.runs == {}


@pytest.mark.parametrize("times", ["true", '"2"', "2.0"])
def test_params_are_validated_strictly_as_json_for_every_command(h: Harness, times: str) -> None:
    # GreetParams does not ask for strictness: the service does, so no command accepts true as 1.
    with pytest.raises(errors.ValidationFailed):
        h.service.submit(ALICE, "greet", f'{{"times": {times}}}', prefer_async=False)
    assert h.runs == {}


def test_a_limited_command_is_not_revealed_to_a_caller_who_may_not_run_it(h: Harness) -> None:
    command("metered", description="", rate_limit=(2, 60), registry=h.registry)(lambda p, c: None)
    assert h.service.own_rate_limit(ADMIN, "metered") is not None
    assert h.service.own_rate_limit(BOB, "metered") is None  # no RateLimit field names it to BOB
    assert h.service.own_rate_limit(ADMIN, "made-up") is None


class UnopenableSecrets(ParamSecrets):
    """KMS refuses (throttled, or down) when the worker opens the sealed params."""

    def __init__(self) -> None:
        super().__init__(None)

    def open(self, execution_id: str, params: dict[str, Any], envelope: Any) -> dict[str, Any]:
        raise ConnectionError("kms unavailable")


def test_secrets_that_cannot_be_opened_give_the_record_back_for_a_retry(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    worker = ExecutionService(
        h.store,
        h.executions,
        h.events,
        h.registry,
        secrets=UnopenableSecrets(),
        max_receive_count=MAX_RECEIVE_COUNT,
        clock=lambda: NOW,
    )
    with pytest.raises(RetryableFailure):
        worker.process_message(h.message_for(execution_id), receive_count=1)
    record = h.record(execution_id)
    # Not stuck `running` behind its lease: queued again, so the redelivery can take it.
    assert (record.status, record.error.code if record.error else None) == ("queued", "DEPENDENCY_UNAVAILABLE")
    for receive_count in range(2, MAX_RECEIVE_COUNT + 1):
        with pytest.raises(RetryableFailure):
            worker.process_message(h.message_for(execution_id), receive_count=receive_count)
    assert h.record(execution_id).status == "dead_lettered"
    assert h.runs == {}


# -- retries with backoff, lease waits, the worker's deadline ---------------------------------


def test_a_transient_failure_comes_back_after_full_jitter_backoff(h: Harness) -> None:
    execution_id = submit_async(h, "flaky")
    expected = []
    for receive_count in range(1, MAX_RECEIVE_COUNT):
        with pytest.raises(RetryableFailure):
            h.service.process_message(h.message_for(execution_id), receive_count, receipt_handle=f"r{receive_count}")
        # rand() = 0.999 of min(cap, base * 2**n): 2 s, then 4 s (ceil), then the 5 s cap.
        delay = math.ceil(0.999 * min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (receive_count - 1)))
        expected.append((f"r{receive_count}", delay))
        record = h.record(execution_id)
        assert record.status == "queued"
        assert record.next_attempt_at == int(NOW) + delay
        assert record.public_view()["next_attempt_at"].endswith("Z")
    assert h.executions.visibility == expected == [("r1", 2), ("r2", 4)]
    errors_seen = h.record(execution_id).attempt_errors
    assert [(e.attempt, e.code) for e in errors_seen] == [
        (1, "COMMAND_TRANSIENT_FAILURE"),
        (2, "COMMAND_TRANSIENT_FAILURE"),
    ]


def test_exhausted_retries_send_the_message_on_to_the_dlq_at_once(h: Harness) -> None:
    execution_id = submit_async(h, "flaky")
    for receive_count in range(1, MAX_RECEIVE_COUNT + 1):
        with pytest.raises(RetryableFailure):
            h.service.process_message(h.message_for(execution_id), receive_count, receipt_handle=f"r{receive_count}")
    record = h.record(execution_id)
    assert (record.status, record.attempts, len(record.attempt_errors)) == ("dead_lettered", 3, 3)
    assert h.executions.visibility[-1] == (f"r{MAX_RECEIVE_COUNT}", 0)  # not after the visibility timeout


def test_a_permanent_failure_ends_failed_at_once_without_a_retry(h: Harness) -> None:
    execution_id = submit_async(h, "conflict")
    h.service.process_message(h.message_for(execution_id), 1, receipt_handle="r1")
    assert (h.record(execution_id).status, h.executions.visibility) == ("failed", [])


def test_a_delivery_during_a_live_lease_waits_for_the_lease_without_running(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    holder = h.store.begin_attempt(execution_id, lease_s=30, now=NOW)
    assert holder is not None and holder.lease_until is not None
    with pytest.raises(AttemptInProgress):
        h.service.process_message(h.message_for(execution_id), 2, receipt_handle="r2")
    assert h.executions.visibility == [("r2", math.ceil(holder.lease_until - NOW) + 1)]
    assert h.runs == {}


def test_a_lease_wait_on_the_last_receive_sends_a_fresh_copy_instead_of_burning_it(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    holder = h.store.begin_attempt(execution_id, lease_s=30, now=NOW)
    assert holder is not None and holder.lease_until is not None
    sent_before = len(h.executions.sent)
    h.service.process_message(h.message_for(execution_id), MAX_RECEIVE_COUNT, receipt_handle="r3")  # acknowledged
    assert h.executions.sent[sent_before:] == [{"execution_id": execution_id}]
    assert h.executions.delays[-1] == math.ceil(holder.lease_until - NOW) + 1
    assert h.record(execution_id).status == "running"


def test_a_retry_whose_receives_are_spent_by_lease_waits_still_gets_its_attempts(h: Harness) -> None:
    execution_id = submit_async(h, "flaky")
    with pytest.raises(RetryableFailure):  # attempt 1 of 3, on the last receive SQS allows
        h.service.process_message(h.message_for(execution_id), 1, receipt_handle="r1")
    sent_before = len(h.executions.sent)
    h.service.process_message(h.message_for(execution_id), MAX_RECEIVE_COUNT, receipt_handle="r3")
    record = h.record(execution_id)
    assert (record.status, record.attempts) == ("queued", 2)
    assert h.executions.sent[sent_before:] == [{"execution_id": execution_id}]  # a copy with receives left


def test_a_reclaimed_lease_of_a_command_that_is_not_retry_safe_fails_instead_of_running_twice(h: Harness) -> None:
    execution_id = submit_async(h, "conflict")
    crashed = h.store.begin_attempt(execution_id, lease_s=10, now=NOW - 100)
    assert crashed is not None
    h.service.process_message(h.message_for(execution_id), 2, receipt_handle="r2")
    record = h.record(execution_id)
    assert (record.status, record.error.code if record.error else None) == ("failed", "ATTEMPT_ABANDONED")
    assert h.runs == {}


def test_the_worker_stops_a_command_before_its_own_deadline_and_retries_it(h: Harness) -> None:
    release = threading.Event()

    @command("slow", description="Outlives the invocation.", timeout_s=10, retry_safe=True, registry=h.registry)
    def slow(params: BaseModel, context: CommandContext) -> None:
        release.wait(5)

    execution_id = submit_async(h, "slow")
    started = time.monotonic()
    with pytest.raises(RetryableFailure):
        h.service.process_message(h.message_for(execution_id), 1, receipt_handle="r1", remaining_s=lambda: 4.5)
    release.set()
    assert time.monotonic() - started < 3  # 4.5 s left minus the 3 s margin, not the 10 s timeout
    record = h.record(execution_id)
    assert (record.status, record.error.code if record.error else None) == ("queued", "WORKER_DEADLINE")


def test_too_little_time_left_sends_the_message_back_without_claiming(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    with pytest.raises(RetryableFailure):
        h.service.process_message(h.message_for(execution_id), 1, receipt_handle="r1", remaining_s=lambda: 2.0)
    assert (h.record(execution_id).status, h.record(execution_id).attempts) == ("queued", 0)
    assert h.executions.visibility == [("r1", 0)]


@pytest.mark.parametrize(("retry_safe", "status"), [(True, "queued"), (False, "failed")])
def test_a_timed_out_attempt_is_retried_only_when_the_command_is_retry_safe(
    h: Harness, retry_safe: bool, status: str
) -> None:
    release = threading.Event()
    name = f"stuck-{retry_safe}".lower()

    @command(name, description="Times out.", timeout_s=0.2, retry_safe=retry_safe, registry=h.registry)
    def stuck(params: BaseModel, context: CommandContext) -> None:
        release.wait(2)

    execution_id = submit_async(h, name)
    with contextlib.suppress(RetryableFailure):
        h.service.process_message(h.message_for(execution_id), 1, receipt_handle="r1")
    release.set()
    record = h.record(execution_id)
    assert (record.status, record.error.code if record.error else None) == (status, "COMMAND_TIMEOUT")


def test_async_records_say_whether_the_command_is_retry_safe_and_when_they_are_due(h: Harness) -> None:
    safe, unsafe = submit_async(h, "greet"), submit_async(h, "conflict")
    assert (h.record(safe).retry_safe, h.record(unsafe).retry_safe) == (True, False)
    assert h.record(safe).next_attempt_at == int(NOW)  # written before its message: the healer's marker
    assert h.registry.get("greet").describe()["retry_safe"] is True  # type: ignore[union-attr]


# -- cancel and wait ---------------------------------------------------------------------------


def test_cancel_of_a_queued_execution_means_it_never_runs(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    cancelled = h.service.cancel(ALICE, execution_id)
    assert (cancelled.status, cancelled.public_view()["cancel_requested"]) == ("cancelled", True)
    h.service.process_message(h.message_for(execution_id), 1, receipt_handle="r1")
    assert h.runs == {}
    assert h.record(execution_id).status == "cancelled"
    assert [e["status"] for e in h.events.sent] == ["cancelled"]
    assert h.service.cancel(ALICE, execution_id).status == "cancelled"  # again: the same answer


def test_cancel_of_a_running_execution_is_seen_by_a_cooperative_command(h: Harness) -> None:
    running = threading.Event()

    @command("patient", description="Waits for a cancel.", timeout_s=5, registry=h.registry)
    def patient(params: BaseModel, context: CommandContext) -> None:
        running.set()
        while not context.cancel_requested():
            time.sleep(0.02)
        raise CommandCancelled()

    execution_id = submit_async(h, "patient")
    worker = threading.Thread(target=h.service.process_message, args=(h.message_for(execution_id), 1))
    worker.start()
    assert running.wait(5)
    marked = h.service.cancel(ALICE, execution_id)
    assert (marked.status, marked.cancel_requested) == ("running", True)
    worker.join(10)
    record = h.record(execution_id)
    assert (record.status, record.error.code if record.error else None) == ("cancelled", "EXECUTION_CANCELLED")


def test_a_transient_failure_after_a_cancel_request_ends_cancelled_not_retried(h: Harness) -> None:
    @command("flaky_cancel", description="Asks for its own cancel, then fails.", registry=h.registry)
    def flaky_cancel(params: BaseModel, context: CommandContext) -> None:
        h.store.cancel(context.execution_id)
        raise TransientCommandError("try later")

    execution_id = submit_async(h, "flaky_cancel")
    h.service.process_message(h.message_for(execution_id), 1, receipt_handle="r1")
    assert h.record(execution_id).status == "cancelled"
    assert h.executions.visibility == []


@pytest.mark.parametrize("name", ["greet", "conflict"])
def test_cancel_of_a_finished_execution_is_409(h: Harness, name: str) -> None:
    execution_id = submit_async(h, name)
    h.service.process_message(h.message_for(execution_id), 1)
    with pytest.raises(errors.ExecutionFinished):
        h.service.cancel(ALICE, execution_id)
    sync_id = h.service.submit(ALICE, "greet", "{}", prefer_async=False).body["execution_id"]
    with pytest.raises(errors.ExecutionFinished):
        h.service.cancel(ALICE, sync_id)


def test_cancel_needs_the_same_access_as_reading(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    with pytest.raises(errors.ExecutionNotFound):
        h.service.cancel(BOB, execution_id)
    with pytest.raises(errors.ExecutionNotFound):
        h.service.cancel(ALICE, "not-an-id!")
    assert h.record(execution_id).status == "queued"


def test_wait_returns_once_the_execution_ends(h: Harness) -> None:
    execution_id = submit_async(h, "greet")
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            h.service.process_message(h.message_for(execution_id), 1)

    execution, _ = h.service.wait(ALICE, execution_id, 20, sleep=sleep)
    assert execution.status == "succeeded"
    assert slept == [0.1, 0.2, 0.4]


def test_wait_reads_a_bounded_number_of_times(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = submit_async(h, "greet")
    reads = []
    real_get = h.store.get

    def counted(eid: str) -> Execution | None:
        reads.append(eid)
        return real_get(eid)

    monkeypatch.setattr(h.store, "get", counted)
    execution, _ = h.service.wait(ALICE, execution_id, 20, sleep=lambda s: None)  # time never passes
    assert execution.status == "queued"
    assert len(reads) == MAX_WAIT_READS


def test_a_running_attempt_renews_its_lease_and_stops_when_it_ends(h: Harness) -> None:
    renewals: list[tuple[str, int]] = []
    real_renew = h.store.renew_lease

    def renew(execution_id: str, attempt: int, lease_until: float) -> bool:
        renewals.append((execution_id, attempt))
        return real_renew(execution_id, attempt, lease_until)

    h.store.renew_lease = renew  # type: ignore[method-assign]
    worker = ExecutionService(
        h.store, h.executions, h.events, h.registry, lease_s=1.0, heartbeat_s=0.05, clock=lambda: NOW
    )

    @command("steady", description="Runs a while.", registry=h.registry)
    def steady(params: BaseModel, context: CommandContext) -> None:
        time.sleep(0.4)

    execution_id = submit_async(h, "steady")
    worker.process_message(h.message_for(execution_id), 1)
    beats = len(renewals)
    assert beats >= 3
    assert set(renewals) == {(execution_id, 1)}
    time.sleep(0.2)
    assert len(renewals) == beats  # no beat after the attempt ended
    assert not h.store.renew_lease(execution_id, 1, NOW + 10)  # a finished attempt has no lease to renew


# -- start_once: one run per idempotency key (webhook deliveries) ------------------------------------


def _stamp() -> Any:
    from cmdgate.audit import AuditStamp

    return AuditStamp("alice", "req-1", "203.0.113.5", "webhook.accepted", "k")


STAMP = _stamp()


def test_start_once_queues_one_run_and_answers_every_later_call_with_it(h: Harness) -> None:
    from cmdgate.audit import AuditStamp

    stamp = AuditStamp("alice", "req-9", "203.0.113.5", "webhook.accepted", "webhook:github:d-1")
    prepared_times: list[int] = []

    def prepare() -> Any:
        prepared_times.append(1)
        return h.service.prepare(ALICE, "greet", '{"name": "ada"}', True)

    first, created = h.service.start_once(ALICE, prepare, "a" * 32, stamp)
    assert (first.status_code, first.body, created) == (202, {"execution_id": "a" * 32, "status": "queued"}, True)
    record = h.record("a" * 32)
    assert (record.audit["request_id"], record.audit["source_ip"], record.audit["idempotency_key"]) == (
        "req-9",
        "203.0.113.5",
        "webhook:github:d-1",
    )
    assert record.audit["audit_action"] == "webhook.accepted"
    h.service.process_message(h.message_for("a" * 32))
    again, created = h.service.start_once(ALICE, prepare, "a" * 32, stamp)
    assert (again.status_code, again.body["status"], created) == (202, "succeeded", False)
    assert len(prepared_times) == 1  # a later call prepares nothing (a changed mapping cannot refuse it)
    assert h.runs == {"greet": 1}
    assert h.queued_ids() == ["a" * 32]  # finished: no message sent again


def test_start_once_losing_a_race_to_create_answers_the_winners_run(h: Harness) -> None:
    def winner() -> Any:
        return h.service.prepare(ALICE, "greet", '{"name": "first"}', True)

    def loser() -> Any:
        # Another delivery of the same key creates the record between this call's read and its create.
        h.service.start_once(ALICE, winner, "b" * 32, STAMP)
        return h.service.prepare(ALICE, "greet", '{"name": "second"}', True)

    answer, created = h.service.start_once(ALICE, loser, "b" * 32, STAMP)
    assert (answer.body["execution_id"], created) == ("b" * 32, False)
    assert h.record("b" * 32).params == {"name": "first", "times": 1}
    assert h.queued_ids() == ["b" * 32, "b" * 32]  # queued and unattempted: its message is sent again


def test_start_once_refuses_a_sync_only_command(h: Harness) -> None:
    with pytest.raises(errors.BadRequest):
        h.service.start_once(ALICE, lambda: h.service.prepare(ALICE, "quick", None, True), "c" * 32, STAMP)
    assert h.store.get("c" * 32) is None


# -- a run started again under its Idempotency-Key (the stored answer lost) ---------------------------


def test_a_sync_run_started_again_under_its_keyed_id_replays_and_runs_nothing_twice(h: Harness) -> None:
    from cmdgate.executions.service import keyed_execution_id

    execution_id = keyed_execution_id(ALICE.principal_id, "key-1", "fingerprint")
    prepared = h.service.prepare(ALICE, "greet", '{"name": "ada"}', False)
    first = h.service.start(ALICE, prepared, None, execution_id)
    again = h.service.start(ALICE, h.service.prepare(ALICE, "greet", '{"name": "ada"}', False), None, execution_id)
    assert first.status_code == again.status_code == 200
    assert first.body == again.body and again.body["execution_id"] == execution_id
    assert h.runs == {"greet": 1}


def test_an_async_run_started_again_under_its_keyed_id_is_the_same_queued_execution(h: Harness) -> None:
    from cmdgate.executions.service import keyed_execution_id

    execution_id = keyed_execution_id(ALICE.principal_id, "key-2", "fingerprint")
    first = h.service.start(ALICE, h.service.prepare(ALICE, "greet", "{}", True), None, execution_id)
    again = h.service.start(ALICE, h.service.prepare(ALICE, "greet", "{}", True), None, execution_id)
    assert first.status_code == again.status_code == 202
    assert first.body == again.body == {"execution_id": execution_id, "status": "queued"}
    # The message is sent again while the run is queued and unattempted (the first send may be lost).
    assert h.queued_ids() == [execution_id, execution_id]


def test_keyed_ids_differ_by_principal_key_and_request() -> None:
    from cmdgate.executions.service import keyed_execution_id

    ids = {
        keyed_execution_id("key:alice", "k", "f"),
        keyed_execution_id("key:bob", "k", "f"),
        keyed_execution_id("key:alice", "k2", "f"),
        keyed_execution_id("key:alice", "k", "f2"),
    }
    assert len(ids) == 4
    assert all(len(i) == 32 and i.isalnum() for i in ids)


def _throttled() -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems")


def test_aws_throttling_in_a_retry_safe_sync_command_asks_to_come_back_and_is_not_stored(h: Harness) -> None:
    @command("safe_throttled", description="Throttled.", retry_safe=True, registry=h.registry)
    def safe_throttled(params: BaseModel, context: CommandContext) -> None:
        raise _throttled()

    with pytest.raises(errors.ProblemError) as raised:  # raised, so the idempotency layer stores nothing
        h.service.submit(ALICE, "safe_throttled", "{}", prefer_async=False)
    assert (raised.value.status, raised.value.code) == (503, "DEPENDENCY_UNAVAILABLE")
    assert raised.value.headers["Retry-After"] == "1"


def test_aws_throttling_in_a_command_not_retry_safe_stays_its_500_answer(h: Harness) -> None:
    @command("unsafe_throttled", description="Throttled.", registry=h.registry)
    def unsafe_throttled(params: BaseModel, context: CommandContext) -> None:
        raise _throttled()

    submission = h.service.submit(ALICE, "unsafe_throttled", "{}", prefer_async=False)
    assert (submission.status_code, submission.body["code"]) == (500, "COMMAND_FAILED")


def test_a_keyed_async_run_whose_message_could_not_be_sent_is_queued_by_the_retry(h: Harness) -> None:
    from cmdgate.executions.service import keyed_execution_id

    execution_id = keyed_execution_id(ALICE.principal_id, "key-3", "fingerprint")
    h.executions.fail = True
    with pytest.raises(errors.DependencyUnavailable):  # answered 503: the client retries under its key
        h.service.start(ALICE, h.service.prepare(ALICE, "greet", "{}", True), None, execution_id)
    assert h.service.get(ALICE, execution_id).status == "failed"
    h.executions.fail = False
    again = h.service.start(ALICE, h.service.prepare(ALICE, "greet", "{}", True), None, execution_id)
    assert (again.status_code, again.body) == (202, {"execution_id": execution_id, "status": "queued"})
    assert h.queued_ids() == [execution_id]  # queued now, not answered "failed" for good
    record = h.service.get(ALICE, execution_id)
    assert (record.status, record.error, record.finished_at) == ("queued", None, None)
