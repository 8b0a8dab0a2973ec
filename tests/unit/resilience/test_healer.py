"""One healer pass against in-process SQS, SNS and DynamoDB shaped like template.yaml's: each repair, its bounds."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from cmdgate.alerts import Alerts
from cmdgate.executions.model import Execution
from cmdgate.executions.queue import MessageQueue
from cmdgate.executions.repairs import ExecutionRepairs
from cmdgate.healer import LAST_PASS_KEY, Healer, HealerConfig, QueueDepth, last_pass_age_s, queue_depth
from cmdgate.state.service import FifoSyncQueue


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Env:
    def __init__(self, session: boto3.session.Session, table_like: Callable[[str], Any]) -> None:
        self.sqs = session.client("sqs")
        self.sns = session.client("sns")
        self.dynamodb = session.client("dynamodb")
        self.executions = table_like("ExecutionsTable")
        self.control = table_like("ControlTable")
        self.state = table_like("StateTable")
        self.queue = self.sqs.create_queue(QueueName="executions")["QueueUrl"]
        self.dlq = self.sqs.create_queue(QueueName="executions-dlq")["QueueUrl"]
        self.events_dlq = self.sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
        self.events_queue = self.sqs.create_queue(QueueName="events")["QueueUrl"]
        self.sync_dlq = self.sqs.create_queue(QueueName="sync-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        self.sync_queue = self.sqs.create_queue(
            QueueName="sync.fifo", Attributes={"FifoQueue": "true", "DeduplicationScope": "messageGroup"}
        )["QueueUrl"]
        topic = self.sns.create_topic(Name="alerts")["TopicArn"]
        self.inbox = self.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.inbox, AttributeNames=["QueueArn"])["Attributes"]
        self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
        self.alerts = Alerts(self.sns, topic, self.dynamodb, self.control.name, window_s=600)
        self.safe_commands: set[str] = set()
        self.logged: list[tuple[str, dict[str, Any]]] = []
        self.now = time.time()

    def healer(self, *, triage_all: bool = False, **config: Any) -> Healer:
        queues = {"events_queue_url": self.events_queue, "events_dlq_url": self.events_dlq}
        queues = {**queues, "state_sync_dlq_url": self.sync_dlq} if triage_all else {}
        return Healer(
            **queues,
            sqs=self.sqs,
            dynamodb=self.dynamodb,
            repairs=ExecutionRepairs(self.executions),
            executions_queue=MessageQueue(self.sqs, self.queue),
            executions_dlq_url=self.dlq,
            dead_letter_queues={"executions": self.dlq, "events": self.events_dlq},
            sync=FifoSyncQueue(self.sqs, self.sync_queue),
            alerts=self.alerts,
            state_table=self.state.name,
            control_table=self.control.name,
            retry_safe=lambda command: command in self.safe_commands or None,
            config=HealerConfig(**{"stuck_grace_s": 30, "queued_after_s": 60, "gist_drift_s": 60, **config}),
            log_action=lambda action, fields: self.logged.append((action, dict(fields))),
        )

    def record(self, execution_id: str, status: str, *, created: float | None = None, **extra: Any) -> None:
        item = Execution(
            execution_id=execution_id,
            command="count",
            principal_id="p",
            mode="async",
            status=status,  # type: ignore[arg-type]
            params={"key": execution_id},
            created_at=iso(self.now - 3600 if created is None else created),
            permissions=("admin",),
        ).to_item()
        self.executions.put_item(Item={**item, **extra})

    def get(self, execution_id: str) -> dict[str, Any]:
        item: dict[str, Any] = self.executions.get_item(Key={"execution_id": execution_id})["Item"]
        return item

    def dead_letter(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.dlq, MessageBody=body)

    def drain(self, url: str) -> list[dict[str, Any]]:
        bodies = []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def alerts_sent(self) -> list[dict[str, Any]]:
        return [json.loads(m["Message"]) for m in self.drain(self.inbox)]


@pytest.fixture
def env(session: boto3.session.Session, table_like: Callable[[str], Any]) -> Env:
    return Env(session, table_like)


TRANSIENT = {"code": "COMMAND_TRANSIENT_FAILURE", "detail": "upstream down", "status": 503}
PERMANENT = {"code": "COMMAND_FAILED", "detail": "bad input", "status": 400}


def test_a_transiently_failed_dead_letter_is_redriven_and_its_message_deleted(env: Env) -> None:
    env.record("t1", "dead_lettered", error=TRANSIENT, attempts=2)
    env.dead_letter(json.dumps({"execution_id": "t1"}))
    report = env.healer().run("pass-1", 30)
    assert report.ok and report.actions["redriven"] == 1
    record = env.get("t1")
    assert record["status"] == "queued" and record["healer_redrives"] == 1
    assert env.drain(env.queue) == [{"execution_id": "t1", "healer_pass": "pass-1"}]
    assert queue_depth(env.sqs, "executions", env.dlq) == QueueDepth("executions", 0, 0)
    assert ("redriven", {"correlation_id": "pass-1", "execution_id": "t1", "redrives": 1}) in env.logged
    assert env.alerts_sent() == []


def test_redrives_are_bounded_per_execution_then_dead_lettered_and_alerted_once_per_cause(env: Env) -> None:
    for execution_id in ("x1", "x2"):
        env.record(execution_id, "dead_lettered", error=TRANSIENT, healer_redrives=2)
        env.dead_letter(json.dumps({"execution_id": execution_id}))
    report = env.healer(max_redrives=2).run("pass-1", 30)
    assert report.actions["dead_lettered"] == 2 and not report.actions["redriven"]
    assert {env.get(e)["status"] for e in ("x1", "x2")} == {"dead_lettered"}
    assert env.drain(env.queue) == []
    (alert,) = env.alerts_sent()  # the same cause, the same window: one alert
    assert alert["alert"] == "execution_dead_lettered" and alert["subject_id"] in ("x1", "x2")
    assert alert["cause"] == "COMMAND_TRANSIENT_FAILURE: upstream down (redrives exhausted)"
    assert alert["runbook"] == "docs/runbooks/execution_dead_lettered.md"
    assert queue_depth(env.sqs, "executions", env.dlq).total == 0


def test_a_queued_record_with_a_permanent_error_ends_dead_lettered_with_it(env: Env) -> None:
    env.record("p1", "queued", error=PERMANENT)
    env.dead_letter(json.dumps({"execution_id": "p1"}))
    env.healer().run("pass-1", 30)
    record = env.get("p1")
    assert record["status"] == "dead_lettered" and record["error"]["code"] == "COMMAND_FAILED"
    assert "finished_at" in record
    (alert,) = env.alerts_sent()
    assert alert["cause"] == "COMMAND_FAILED: bad input (not transient)"


def test_poison_messages_are_alerted_and_deleted(env: Env) -> None:
    env.dead_letter("not json")
    env.dead_letter(json.dumps({"execution_id": "nosuchexecution"}))
    report = env.healer().run("pass-1", 30)
    assert report.actions["poison_deleted"] == 2
    assert queue_depth(env.sqs, "executions", env.dlq).total == 0
    alerts = env.alerts_sent()
    assert len(alerts) == 1 and alerts[0]["alert"] == "poison_message"  # one cause, one alert


def test_messages_of_running_or_finished_executions_are_deleted_untouched(env: Env) -> None:
    env.record("r1", "running", lease_until=int(env.now) + 600, attempts=1)
    env.record("s1", "succeeded")
    for execution_id in ("r1", "s1"):
        env.dead_letter(json.dumps({"execution_id": execution_id}))
    report = env.healer().run("pass-1", 30)
    assert report.actions["dlq_running_left"] == 1 and report.actions["dlq_finished_deleted"] == 1
    assert env.get("r1")["status"] == "running" and env.get("s1")["status"] == "succeeded"
    assert queue_depth(env.sqs, "executions", env.dlq).total == 0
    assert env.drain(env.queue) == []


def test_stuck_executions_are_requeued_when_retry_safe_else_failed_and_alerted(env: Env) -> None:
    gone = int(env.now) - 120  # the lease ran out 120 s ago; the grace is 30 s
    env.record("safe1", "running", attempts=1, lease_until=gone, retry_safe=True)
    env.record("reg1", "running", attempts=1, lease_until=gone)  # older than the flag: from the registry
    env.record("unsafe1", "running", attempts=1, lease_until=gone)
    env.record("unsafe2", "running", attempts=1, lease_until=gone, retry_safe=False)
    env.record("fresh1", "running", attempts=1, lease_until=int(env.now) - 5, retry_safe=True)  # within the grace
    env.executions.update_item(
        Key={"execution_id": "reg1"},
        UpdateExpression="SET command = :c REMOVE retry_safe",
        ExpressionAttributeValues={":c": "safe"},
    )
    env.safe_commands.add("safe")
    report = env.healer().run("pass-1", 30)
    assert report.actions["stuck_requeued"] == 2 and report.actions["stuck_failed"] == 2
    for execution_id in ("safe1", "reg1"):
        record = env.get(execution_id)
        assert record["status"] == "queued" and record["error"]["code"] == "WORKER_LOST"
        assert "lease_until" not in record
    for execution_id in ("unsafe1", "unsafe2"):
        record = env.get(execution_id)
        assert record["status"] == "failed" and record["error"]["code"] == "WORKER_LOST"
    assert env.get("fresh1")["status"] == "running"
    assert sorted(m["execution_id"] for m in env.drain(env.queue)) == ["reg1", "safe1"]
    (alert,) = env.alerts_sent()  # both unsafe ones have the same cause
    assert alert["alert"] == "execution_stuck"
    # A second pass finds nothing more to do.
    assert not env.healer().run("pass-2", 30).actions


def test_queued_records_without_a_message_are_sent_again_once_per_threshold(env: Env) -> None:
    env.record("q1", "queued", created=env.now - 300)
    env.record("young", "queued", created=env.now - 10)
    env.record("backoff", "queued", created=env.now - 300, next_attempt_at=int(env.now) + 30)
    report = env.healer().run("pass-1", 30)
    assert report.actions["queued_resent"] == 1
    assert env.drain(env.queue) == [{"execution_id": "q1", "healer_pass": "pass-1"}]
    assert env.get("q1")["healer_resends"] == 1
    assert not env.healer().run("pass-2", 30).actions  # idempotent: not again within the threshold


def test_a_pass_killed_between_send_and_mark_leaves_the_record_to_the_next_pass(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.record("q1", "queued", created=env.now - 300)
    from cmdgate.executions.repairs import ExecutionRepairs

    def killed(*_: Any, **__: Any) -> bool:
        raise SystemExit("the healer's runtime is killed here")

    with monkeypatch.context() as patched:
        patched.setattr(ExecutionRepairs, "mark_resent", killed)
        with pytest.raises(SystemExit):
            env.healer().run("pass-1", 30)
    assert env.drain(env.queue) == [{"execution_id": "q1", "healer_pass": "pass-1"}]  # sent before the kill
    # The next pass, at once, sends it again (harmless: one attempt is claimed) and marks it.
    report = env.healer().run("pass-2", 30)
    assert report.actions["queued_resent"] == 1
    assert env.drain(env.queue) == [{"execution_id": "q1", "healer_pass": "pass-2"}]
    assert env.get("q1")["healer_resends"] == 1


def test_a_redriven_execution_is_not_also_resent_in_the_same_pass(env: Env) -> None:
    env.record("t1", "dead_lettered", error=TRANSIENT, created=env.now - 3600)
    env.dead_letter(json.dumps({"execution_id": "t1"}))
    report = env.healer().run("pass-1", 30)
    assert dict(report.actions) == {"redriven": 1}
    assert len(env.drain(env.queue)) == 1


def register(env: Env, key: str, version: int, dirty_at: float | None) -> None:
    item: dict[str, Any] = {"pk": {"S": f"key#{key}"}, "sk": {"S": "register"}, "version": {"N": str(version)}}
    if dirty_at is not None:
        item["dirty_ns"] = {"S": key.split(".", maxsplit=1)[0]}
        item["dirty_at"] = {"N": str(dirty_at)}
    env.dynamodb.put_item(TableName=env.state.name, Item=item)


def test_keys_unsynced_past_the_threshold_get_their_sync_message_again(env: Env) -> None:
    register(env, "app.old", 3, env.now - 600.5)
    register(env, "app.recent", 2, env.now - 5)
    register(env, "other.synced", 7, None)
    report = env.healer().run("pass-1", 30)
    assert report.actions["gist_resynced"] == 1
    received = env.sqs.receive_message(QueueUrl=env.sync_queue, AttributeNames=["All"])["Messages"]
    assert [json.loads(m["Body"]) for m in received] == [{"key": "app.old", "version": 3}]
    # Exactly as a write schedules it: the same group and deduplication id as FifoSyncQueue's.
    assert received[0]["Attributes"]["MessageGroupId"] == hashlib.sha256(b"app.old").hexdigest()[:64]
    assert received[0]["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"app.old#3").hexdigest()


def test_a_pass_is_bounded_by_its_budget(env: Env) -> None:
    env.record("q1", "queued", created=env.now - 300)
    report = env.healer().run("pass-1", 0)
    assert report.out_of_time and not report.actions
    assert env.get("q1").get("healer_resends") is None


def test_a_dead_letter_batch_is_bounded(env: Env) -> None:
    for i in range(5):
        env.dead_letter(json.dumps({"execution_id": f"nosuch{i}"}))
    report = env.healer(batch=3).run("pass-1", 30)
    assert report.actions["poison_deleted"] == 3
    assert queue_depth(env.sqs, "executions", env.dlq).visible == 2  # left for the next pass


def test_a_successful_pass_is_recorded_and_a_failed_one_is_not(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    assert last_pass_age_s(env.dynamodb, env.control.name, env.now) is None
    assert env.healer().run("pass-1", 30).ok
    age = last_pass_age_s(env.dynamodb, env.control.name, time.time() + 100)
    assert age is not None and 99 < age < 110
    item = env.dynamodb.get_item(TableName=env.control.name, Key={"pk": {"S": LAST_PASS_KEY}})["Item"]
    assert item["pass_id"]["S"] == "pass-1"

    env.record("q1", "queued", created=env.now - 300)
    healer = env.healer()

    def broken(*_: Any, **__: Any) -> list[dict[str, Any]]:
        raise RuntimeError("throttled")

    monkeypatch.setattr(ExecutionRepairs, "with_status", broken)
    register(env, "app.old", 1, env.now - 600)
    report = healer.run("pass-2", 30)
    assert not report.ok
    assert report.errors == ["stuck_executions: RuntimeError", "orphaned_queued: RuntimeError"]
    assert report.actions["gist_resynced"] == 1  # the repairs after a broken one still ran
    item = env.dynamodb.get_item(TableName=env.control.name, Key={"pk": {"S": LAST_PASS_KEY}})["Item"]
    assert item["pass_id"]["S"] == "pass-1"


def test_every_dlq_is_measured_and_a_non_empty_one_alerted(env: Env) -> None:
    env.sqs.send_message(QueueUrl=env.events_dlq, MessageBody="{}")
    report = env.healer().run("pass-1", 30)
    assert report.dead_letter_queues == {"executions": 0, "events": 1}
    (alert,) = env.alerts_sent()
    assert (alert["alert"], alert["subject_id"]) == ("dlq_not_empty", "events")


def test_running_executions_with_live_leases_never_fill_the_stuck_batch(env: Env) -> None:
    for i in range(4):
        env.record(f"live{i}", "running", attempts=1, lease_until=int(env.now) + 600, created=env.now - 900 + i)
    env.record("gone1", "running", attempts=1, lease_until=int(env.now) - 120, created=env.now - 10)
    report = env.healer(batch=2).run("pass-1", 30)
    assert report.actions["stuck_failed"] == 1
    assert env.get("gone1")["status"] == "failed"


def test_dead_lettered_events_are_redriven_a_bounded_number_of_times_and_poison_is_dropped(env: Env) -> None:
    event = json.dumps({"type": "command.executed", "execution_id": "e1", "command": "echo", "status": "succeeded"})
    env.sqs.send_message(QueueUrl=env.events_dlq, MessageBody=event)
    env.sqs.send_message(QueueUrl=env.events_dlq, MessageBody="not json")
    report = env.healer(triage_all=True, max_redrives=2).run("pass-1", 30)
    assert report.actions["event_redriven"] == 1 and report.actions["event_poison_deleted"] == 1
    assert report.dead_letter_queues["events"] == 0  # every handled message deleted
    for redrives in (1, 2):  # it fails again and is dead-lettered again, attribute and all
        (message,) = env.sqs.receive_message(QueueUrl=env.events_queue, MessageAttributeNames=["All"])["Messages"]
        assert message["Body"] == event
        assert message["MessageAttributes"]["healer_redrives"]["StringValue"] == str(redrives)
        env.sqs.delete_message(QueueUrl=env.events_queue, ReceiptHandle=message["ReceiptHandle"])
        env.sqs.send_message(
            QueueUrl=env.events_dlq, MessageBody=event, MessageAttributes=_attributes(message["MessageAttributes"])
        )
        report = env.healer(triage_all=True, max_redrives=2).run(f"pass-{redrives + 1}", 30)
    assert report.actions["event_abandoned"] == 1 and "event_redriven" not in report.actions
    assert env.sqs.receive_message(QueueUrl=env.events_queue).get("Messages", []) == []
    causes = [a["cause"] for a in env.alerts_sent() if a["alert"] == "poison_message"]
    assert any("after 2 redrives" in c for c in causes) and any("not one cmdgate sends" in c for c in causes)


def _attributes(received: dict[str, Any]) -> dict[str, Any]:
    return {name: {"DataType": v["DataType"], "StringValue": v["StringValue"]} for name, v in received.items()}


def test_dead_lettered_syncs_are_sent_again_only_for_keys_still_behind(env: Env) -> None:
    register(env, "a.behind", 3, env.now - 5)
    env.dynamodb.update_item(
        TableName=env.state.name,
        Key={"pk": {"S": "key#a.behind"}, "sk": {"S": "register"}},
        UpdateExpression="SET synced_version = :s",
        ExpressionAttributeValues={":s": {"N": "1"}},
    )
    register(env, "a.synced", 2, None)
    env.dynamodb.update_item(
        TableName=env.state.name,
        Key={"pk": {"S": "key#a.synced"}, "sk": {"S": "register"}},
        UpdateExpression="SET synced_version = :s",
        ExpressionAttributeValues={":s": {"N": "2"}},
    )
    for i, body in enumerate(['{"key": "a.behind", "version": 2}', '{"key": "a.synced", "version": 2}', "[]"]):
        env.sqs.send_message(QueueUrl=env.sync_dlq, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=str(i))
    report = env.healer(triage_all=True).run("pass-1", 30)
    assert (report.actions["sync_redriven"], report.actions["sync_dlq_already_synced"]) == (1, 1)
    assert report.actions["sync_poison_deleted"] == 1
    assert env.drain(env.sync_queue) == [{"key": "a.behind", "version": 3}]  # the newest version, sent again
    assert env.sqs.receive_message(QueueUrl=env.sync_dlq).get("Messages", []) == []
