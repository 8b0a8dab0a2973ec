"""One healer pass repairs each case against the local stack; each test prints the time from fault to repair.

The healer runs in its own execution environment (the function's environment from the stack, its
own access key, so test_zz_least_privilege checks its calls), with short thresholds. Faults the
API cannot be made to leave behind on purpose (a worker gone mid-run, a record whose message was
lost, a write whose sync hand-off was lost) are written as they would be left.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from cmdgate.executions.model import Execution
from cmdgate_local.invoke import function_environment
from cmdgate_local.stack import StackConfig
from tests.integration.conftest import MAX_RECEIVE_COUNT, Stack, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
THRESHOLDS = {
    "HEALER_STUCK_GRACE_S": "1",
    "HEALER_QUEUED_AFTER_S": "2",
    "HEALER_GIST_DRIFT_S": "2",
    "HEALER_MAX_REDRIVES": "2",
    # State integrity: a page of the table and a few gists per pass; the tests run passes until
    # the cursor reaches the key they corrupted (the shared stack holds every other test's keys).
    "HEALER_INTEGRITY_ITEMS": "1000",
    "HEALER_INTEGRITY_GISTS": "8",
}
SCHEDULED = json.loads((ROOT / "events" / "healer_schedule.json").read_text())

Healer = Callable[[], dict[str, Any]]


def report_repair(case: str, seconds: float) -> None:
    print(f"\nhealer repair time [{case}]: {seconds:.2f} s from fault to repair")


@pytest.fixture(scope="module")
def healer(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Healer]:
    config = StackConfig(root=ROOT)
    log_dir = tmp_path_factory.mktemp("healer-logs")
    with function_environment(
        config, stack.state, "HealerFunction", log_dir, environment=THRESHOLDS, build_dir=Path(stack.state["build_dir"])
    ) as env:

        def run() -> dict[str, Any]:
            result = env.invoke(json.dumps(SCHEDULED).encode())
            assert not result.function_error, result.payload
            report: dict[str, Any] = result.json()
            assert report["ok"], report
            return report

        yield run


class Inbox:
    """An SQS queue subscribed to the alerts topic; keeps every alert it has seen."""

    def __init__(self, stack: Stack) -> None:
        self.sqs = stack.aws("sqs")
        self.url = self.sqs.create_queue(QueueName=f"alerts-inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.aws("sns").subscribe(TopicArn=stack.resource("AlertsTopic"), Protocol="sqs", Endpoint=arn)
        self.seen: list[dict[str, Any]] = []

    def alerts(self) -> list[dict[str, Any]]:
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                self.seen.append(json.loads(json.loads(message["Body"])["Message"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return self.seen


@pytest.fixture(scope="module")
def inbox(stack: Stack) -> Inbox:
    return Inbox(stack)


def executions_table(stack: Stack) -> Any:
    return (
        boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        .resource("dynamodb", endpoint_url=stack.state["moto_url"])
        .Table(stack.resource("ExecutionsTable"))
    )


def record(stack: Stack, status: str, command: str = "count", *, age_s: float = 0, **extra: Any) -> str:
    """An execution record written as a fault leaves it (no message sent)."""
    execution_id = uuid.uuid4().hex
    created = datetime.fromtimestamp(time.time() - age_s, UTC).isoformat(timespec="milliseconds")
    item = Execution(
        execution_id=execution_id,
        command=command,
        principal_id="healer-test",
        mode="async",
        status=status,  # type: ignore[arg-type]
        params={"key": execution_id} if command == "count" else {},
        created_at=created.replace("+00:00", "Z"),
        expires_at=int(time.time()) + 3600,
        permissions=("admin",),
    ).to_item()
    executions_table(stack).put_item(Item={**item, **extra})
    return execution_id


def status_of(stack: Stack, execution_id: str) -> dict[str, Any]:
    item: dict[str, Any] = executions_table(stack).get_item(Key={"execution_id": execution_id}, ConsistentRead=True)[
        "Item"
    ]
    return item


def counted(stack: Stack, key: str) -> int:
    item = (
        stack.aws("dynamodb")
        .get_item(TableName=stack.resource("ControlTable"), Key={"pk": {"S": f"count#{key}"}}, ConsistentRead=True)
        .get("Item")
    )
    return int(item["executions"]["N"]) if item else 0


def in_dlq(stack: Stack, execution_id: str) -> bool:
    """Whether the executions DLQ holds the message this module put there for the execution (looked at
    without taking it). Only that message: under load, a copy of a redriven message can be received
    past the test stack's 4 s visibility timeout by a cold worker and moved there too; the next pass
    drops it as finished (test_messages_of_running_or_finished_executions_are_deleted_untouched)."""
    sqs, url = stack.aws("sqs"), stack.resource("ExecutionsDLQ")
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        if any(m["Body"] == json.dumps({"execution_id": execution_id}) for m in messages):
            return True
        if len(messages) < 10:
            return False
    return False


def test_dlq_triage_redrives_a_transient_failure_which_then_succeeds(
    stack: Stack, healer: Healer, inbox: Inbox
) -> None:
    # As the worker leaves it after MAX_RECEIVE_COUNT transient failures (test_dead_letters drives that
    # path end to end): dead-lettered with its last error, its message in the DLQ. The command succeeds
    # on its next attempt.
    error = {"code": "COMMAND_TRANSIENT_FAILURE", "detail": "transient failure on attempt 2", "status": 503}
    execution_id = record(
        stack,
        "dead_lettered",
        "fail",
        params_json=json.dumps({"mode": "transient", "times": MAX_RECEIVE_COUNT}),
        attempts=MAX_RECEIVE_COUNT,
        error=error,
    )
    stack.aws("sqs").send_message(
        QueueUrl=stack.resource("ExecutionsDLQ"), MessageBody=json.dumps({"execution_id": execution_id})
    )
    fault = time.monotonic()
    report = healer()
    assert {"action": "redriven", "execution_id": execution_id, "redrives": 1} in report["acted_on"]
    done = wait_for(lambda: (r := status_of(stack, execution_id))["status"] == "succeeded" and r, timeout_s=30)
    report_repair("DLQ triage, transient: redriven to success", time.monotonic() - fault)
    assert done["healer_redrives"] == 1
    assert done["attempts"] == MAX_RECEIVE_COUNT + 1
    assert not in_dlq(stack, execution_id)  # handled, so deleted


def test_dlq_triage_dead_letters_and_alerts_the_rest_once_per_cause(stack: Stack, healer: Healer, inbox: Inbox) -> None:
    inbox.alerts()
    cause = f"upstream refused ({uuid.uuid4().hex[:8]})"
    error = {"code": "COMMAND_TRANSIENT_FAILURE", "detail": cause, "status": 503}
    # Both were redriven as often as allowed already; same cause, so one alert.
    exhausted = [record(stack, "dead_lettered", error=error, attempts=2, healer_redrives=2) for _ in range(2)]
    sqs, dlq = stack.aws("sqs"), stack.resource("ExecutionsDLQ")
    for execution_id in exhausted:
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"execution_id": execution_id}))
    poison = uuid.uuid4().hex
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"execution_id": poison}))
    fault = time.monotonic()
    report = healer()
    report_repair("DLQ triage, exhausted + poison: dead-lettered, alerted, deleted", time.monotonic() - fault)
    assert report["actions"].get("dead_lettered", 0) >= 2 and report["actions"].get("poison_deleted", 0) >= 1
    for execution_id in exhausted:
        item = status_of(stack, execution_id)
        assert item["status"] == "dead_lettered" and item["error"]["detail"] == cause
        assert not in_dlq(stack, execution_id)
    assert not in_dlq(stack, poison)
    alerts = wait_for(lambda: [a for a in inbox.alerts() if cause in a["cause"]], timeout_s=10)
    (alert,) = alerts
    assert alert["alert"] == "execution_dead_lettered" and alert["subject_id"] in exhausted
    assert alert["runbook"] == "docs/runbooks/execution_dead_lettered.md"
    assert any(a["alert"] == "poison_message" for a in inbox.alerts())


def test_stuck_executions_are_requeued_when_retry_safe_else_failed_and_alerted(
    stack: Stack, healer: Healer, inbox: Inbox
) -> None:
    lease_gone = int(time.time()) - 5  # the worker died: its lease ran out, past the 1 s grace
    safe = record(stack, "running", attempts=1, lease_until=lease_gone, retry_safe=True)
    unsafe = record(stack, "running", attempts=1, lease_until=lease_gone)
    fault = time.monotonic()
    report = healer()
    assert report["actions"].get("stuck_requeued", 0) >= 1 and report["actions"].get("stuck_failed", 0) >= 1
    failed = status_of(stack, unsafe)
    assert failed["status"] == "failed" and failed["error"]["code"] == "WORKER_LOST"
    report_repair("stuck, not retry_safe: failed", time.monotonic() - fault)
    wait_for(lambda: status_of(stack, safe)["status"] == "succeeded", timeout_s=30)
    report_repair("stuck, retry_safe: requeued to success", time.monotonic() - fault)
    assert status_of(stack, safe)["attempts"] == 2
    assert counted(stack, safe) == 1 and counted(stack, unsafe) == 0
    alerts = wait_for(lambda: [a for a in inbox.alerts() if a["alert"] == "execution_stuck"], timeout_s=10)
    assert any("count stuck running" in a["cause"] for a in alerts)


def test_a_queued_record_whose_message_was_lost_is_sent_again_and_runs_once(stack: Stack, healer: Healer) -> None:
    orphan = record(stack, "queued", age_s=5)  # the api function wrote it; its message never went out
    fault = time.monotonic()
    report = healer()
    assert report["actions"].get("queued_resent", 0) >= 1
    wait_for(lambda: status_of(stack, orphan)["status"] == "succeeded", timeout_s=30)
    report_repair("queued without a message: re-sent to success", time.monotonic() - fault)
    assert counted(stack, orphan) == 1
    assert status_of(stack, orphan)["healer_resends"] == 1
    healer()  # finished now: nothing to re-send
    assert status_of(stack, orphan)["healer_resends"] == 1 and counted(stack, orphan) == 1


class DroppedHandOff:
    """A sync scheduler whose message is lost (the write stands, the key stays dirty)."""

    def schedule(self, key: str, version: int) -> None:
        return None


def test_a_key_whose_sync_hand_off_was_lost_gets_its_sync_message_again(stack: Stack, healer: Healer) -> None:
    from cmdgate.state.service import Preconditions, StateService
    from cmdgate.state.store import StateStore

    dynamodb = stack.aws("dynamodb")
    store = StateStore(
        dynamodb, stack.resource("StateTable"), retention_s=86400, lease_table=stack.resource("ControlTable")
    )
    key = f"healer.drift-{uuid.uuid4().hex[:8]}"
    register, _ = StateService(store, DroppedHandOff()).put(key, {"n": 1}, Preconditions(if_none_match_any=True))
    fault = time.monotonic()
    wait_for(lambda: time.monotonic() - fault > 2.5, timeout_s=5)  # older than the drift threshold
    report = healer()
    assert {"action": "gist_resynced", "key": key, "version": register.version} in report["acted_on"]
    report_repair("gist drift: sync message re-sent by the pass", time.monotonic() - fault)

    def synced() -> bool:
        # Only the register is read: receiving from the FIFO queue here would count as a delivery
        # and, with the test stack's MaxReceiveCount of 2, move the re-sent message to the DLQ.
        item = dynamodb.get_item(
            TableName=stack.resource("StateTable"),
            Key={"pk": {"S": f"key#{key}"}, "sk": {"S": "register"}},
            ConsistentRead=True,
        )["Item"]
        return int(item.get("synced_version", {"N": "0"})["N"]) == register.version

    wait_for(synced, timeout_s=30)
    report_repair("gist drift: the key's gist written after the pass", time.monotonic() - fault)


def test_health_reports_the_healers_last_pass_and_degrades_while_a_dlq_holds_messages(
    stack: Stack, healer: Healer
) -> None:
    # A healer whose last successful pass is an hour old is late: degraded until a pass succeeds again.
    stack.aws("dynamodb").put_item(
        TableName=stack.resource("ControlTable"),
        Item={"pk": {"S": "healer#last-pass"}, "finished_at": {"N": str(int(time.time()) - 3600)}},
    )
    late = stack.client().get("/v1/health").json()
    assert late["status"] == "degraded" and late["checks"]["healer"]["status"] == "failing"
    healer()
    detailed = stack.admin.get("/v1/admin/health").json()
    assert detailed["checks"]["healer"]["status"] == "ok"
    assert detailed["checks"]["healer"]["last_pass_age_s"] < 30
    assert set(detailed["checks"]["sqs"]["queues"]) == {"executions", "events", "state_sync"}
    assert set(detailed["checks"]["dead_letters"]["queues"]) == {"executions", "events", "state_sync"}
    assert "oldest_queued_age_s" in detailed["checks"]["executions"]
    sqs, events_dlq = stack.aws("sqs"), stack.resource("EventsDLQ")
    marker = json.dumps({"type": "healer-test", "id": uuid.uuid4().hex})
    sqs.send_message(QueueUrl=events_dlq, MessageBody=marker)
    try:
        public = stack.client().get("/v1/health")
        assert public.status_code == 200
        assert public.json()["status"] == "degraded"
        assert public.json()["checks"]["dead_letters"]["status"] == "failing"
    finally:
        while messages := sqs.receive_message(QueueUrl=events_dlq, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                if message["Body"] == marker:
                    sqs.delete_message(QueueUrl=events_dlq, ReceiptHandle=message["ReceiptHandle"])
            if any(m["Body"] == marker for m in messages):
                break


def state_register(stack: Stack, key: str) -> dict[str, Any]:
    item: dict[str, Any] = stack.aws("dynamodb").get_item(
        TableName=stack.resource("StateTable"),
        Key={"pk": {"S": f"key#{key}"}, "sk": {"S": "register"}},
        ConsistentRead=True,
    )["Item"]
    return item


def synced_key(stack: Stack, key: str, value: Any) -> dict[str, Any]:
    """A key written through the API and synced to its gist; its register."""
    assert stack.admin.put(f"/v1/state/{key}", json=value, headers={"If-None-Match": "*"}).status_code == 201
    return dict(wait_for(lambda: (r := state_register(stack, key)).get("synced_version", {}).get("N") == "1" and r))


def gist_content(stack: Stack, item: dict[str, Any]) -> str:
    gist = httpx.get(
        f"{stack.state['gist_url']}/gists/{item['gist_id']['S']}", headers={"Authorization": "Bearer test"}
    ).json()
    return str(gist["files"][item["gist_file"]["S"]]["content"])


def passes_until(healer: Healer, action: str, key: str, max_passes: int = 30) -> int:
    """Runs passes until one reports `action` on `key` (the integrity cursor walks the table); how many ran."""
    for ran in range(1, max_passes + 1):
        report = healer()
        if any(a["action"] == action and a.get("key") == key for a in report["acted_on"]):
            return ran
    raise AssertionError(f"no pass reported {action} on {key} in {max_passes} passes")


@pytest.mark.parametrize("corruption", ["not JSON", "another value"])
def test_a_gist_file_that_fails_its_check_is_rewritten_from_the_register(
    stack: Stack, healer: Healer, inbox: Inbox, corruption: str
) -> None:
    from cmdgate.crypto import codec_for
    from cmdgate.state import layout

    key = f"healer.file-{uuid.uuid4().hex[:8]}"
    value = {"n": 1, "kept": "in the register"}
    item = synced_key(stack, key, value)
    codec = codec_for("kms", stack.aws("kms"), stack.resource("StateKey"))
    if corruption == "not JSON":
        content = '{"format": 2, "version": 1, "value": '
    else:  # a well-formed, sealed document of this key and version with another value: fails the digest
        content = layout.encode(
            codec, key, 1, json.dumps({"n": 2}), deleted=False, updated_at="x", digest="x", plaintext=False
        )
    token = stack.aws("secretsmanager").get_secret_value(SecretId="cmdgate-local-github-token")["SecretString"]
    httpx.patch(  # someone holding the token edits the file
        f"{stack.state['gist_url']}/gists/{item['gist_id']['S']}",
        json={"files": {item["gist_file"]["S"]: {"content": content}}},
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    fault = time.monotonic()
    passes = passes_until(healer, "gist_file_rewritten", key)
    report_repair(f"gist file {corruption}: found by pass {passes}", time.monotonic() - fault)

    def rewritten() -> bool:
        try:
            return layout.decode(codec, key, gist_content(stack, state_register(stack, key))).value == value
        except layout.InvalidStateFile:
            return False

    wait_for(rewritten, timeout_s=30)
    report_repair(f"gist file {corruption}: rewritten from the register", time.monotonic() - fault)
    after = state_register(stack, key)
    assert after["version"]["N"] == "1"  # the register is the source of truth: it did not move
    wait_for(lambda: state_register(stack, key)["synced_version"]["N"] == "1", timeout_s=10)
    alerts = wait_for(lambda: [a for a in inbox.alerts() if a["alert"] == "state_repaired"], timeout_s=10)
    assert any("rewritten from its register" in a["cause"] for a in alerts)


def test_a_register_that_fails_its_digest_is_restored_from_the_gist_and_alerted(
    stack: Stack, healer: Healer, inbox: Inbox
) -> None:
    key = f"healer.register-{uuid.uuid4().hex[:8]}"
    synced_key(stack, key, {"n": 1, "good": True})
    stack.aws("dynamodb").update_item(  # the value changed in DynamoDB behind cmdgate's back; its digest did not
        TableName=stack.resource("StateTable"),
        Key={"pk": {"S": f"key#{key}"}, "sk": {"S": "register"}},
        UpdateExpression="SET value_json = :v",
        ExpressionAttributeValues={":v": {"S": '{"n": 1, "good": false}'}},
    )
    fault = time.monotonic()
    passes = passes_until(healer, "register_restored", key)
    report_repair(f"register failing its digest: restored by pass {passes}", time.monotonic() - fault)
    read = stack.admin.get(f"/v1/state/{key}")
    assert read.json() == {"n": 1, "good": True} and read.headers["state-version"] == "2"
    alerts = wait_for(lambda: [a for a in inbox.alerts() if a["alert"] == "state_repaired"], timeout_s=10)
    assert any(a["subject_id"] == key and "restored" in a["cause"] for a in alerts)
    assert wait_for(lambda: state_register(stack, key).get("synced_version", {}).get("N") == "2", timeout_s=30)


def test_events_and_sync_dead_letters_are_triaged_message_by_message(stack: Stack, healer: Healer) -> None:
    sqs = stack.aws("sqs")
    key = f"healer.dlq-{uuid.uuid4().hex[:8]}"
    synced_key(stack, key, {"n": 1})
    sqs.send_message(QueueUrl=stack.resource("EventsDLQ"), MessageBody=json.dumps({"type": "stats.mirror"}))
    sqs.send_message(
        QueueUrl=stack.resource("StateSyncDLQ"),
        MessageBody=json.dumps({"key": key, "version": 1}),
        MessageGroupId=key,
        MessageDeduplicationId=uuid.uuid4().hex,
    )
    fault = time.monotonic()
    report = healer()
    report_repair("events and sync DLQs: triaged", time.monotonic() - fault)
    assert report["actions"].get("event_redriven", 0) >= 1
    assert {"action": "sync_dlq_already_synced", "key": key, "version": 1} in report["acted_on"]
    assert report["dead_letter_queues"]["events"] == 0 and report["dead_letter_queues"]["state_sync"] == 0
