"""The scheduled self-healer: one bounded, idempotent pass over what can break between the parts.

Each pass runs its repairs in order, each within the pass's time budget and a batch size, and
each action is a conditional write first, so a pass that dies half-way or runs twice repairs
nothing twice:

- DLQ triage: an executions-DLQ message whose execution failed transiently is redriven (at most
  `max_redrives` times per execution, counted on its record as `healer_redrives`); the rest end
  `dead_lettered` with their last error and are alerted; messages naming no execution are poison
  (alerted). Every handled message is deleted, so the DLQ-depth alarm clears.
- Events and state-sync DLQ triage, message by message: an event (`command.executed`,
  `state.changed`, `stats.mirror`; the event processor is idempotent) goes back to the events queue
  at most `max_redrives` times (counted in a `healer_redrives` message attribute), then it is
  alerted; a sync message whose key is still behind has its sync sent again (under a deduplication
  id of its own), one whose key has been synced since is dropped; anything else is poison
  (alerted). Every handled message is deleted.
- Stuck executions: `running` past their lease (the command's timeout + the lease margin) plus a
  grace, so the worker is gone: requeued when the command is `retry_safe`, else `failed` and alerted.
- Orphaned queued executions: `queued` longer than a threshold (the api function wrote the record
  but its message was lost) get their message again; a duplicate is harmless, the worker's claim
  of an attempt refuses a record that is no longer `queued`.
- Gist drift: state keys in the sparse DirtyIndex longer than a threshold get their sync message
  again, exactly as a write schedules it (FIFO, deduplicated on key + version).
- State integrity (cmdgate.state.integrity): a page of registers per pass, from a cursor kept in the
  control table (`healer#integrity-cursor`), so passes walk every key in turn: a gist file that fails
  its check is rewritten from its register, a register that fails its own digest is restored from
  the newest gist revision matching its version log; both alerted (`state_repaired`). Bounded by
  the items read and the gists fetched per pass (HEALER_INTEGRITY_ITEMS, HEALER_INTEGRITY_GISTS).

A pass that ran every repair without an error records itself (`healer#last-pass` in the control
table): health reports it, and degrades when it is late.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cmdgate import alerts as alert_names
from cmdgate.alerts import Alerts
from cmdgate.executions.model import ExecutionError
from cmdgate.executions.queue import MessageQueue
from cmdgate.executions.repairs import ExecutionRepairs
from cmdgate.state.integrity import StateIntegrity

LAST_PASS_KEY = "healer#last-pass"  # noqa: S105 - a control-table key, no secret
INTEGRITY_CURSOR_KEY = "healer#integrity-cursor"
# Error statuses and codes of a failure worth another attempt (the worker retries the same ones).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_CODES = frozenset(
    {"COMMAND_TRANSIENT_FAILURE", "COMMAND_TIMEOUT", "DEPENDENCY_UNAVAILABLE", "WORKER_LOST", "THROTTLED"}
)
WORKER_LOST = "WORKER_LOST"
MAX_REPORTED = 50
REDRIVES_ATTRIBUTE = "healer_redrives"  # on an event the healer sent back to the events queue
EVENT_TYPES = frozenset({"command.executed", "state.changed", "stats.mirror"})


@dataclass(frozen=True)
class QueueDepth:
    """Visible and in-flight messages of one queue."""

    name: str
    visible: int
    in_flight: int

    @property
    def total(self) -> int:
        """Every message the queue holds."""
        return self.visible + self.in_flight


def queue_depth(sqs: Any, name: str, queue_url: str) -> QueueDepth:
    """Read a queue's approximate depth."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueDepth(
        name,
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


class SyncScheduler(Protocol):
    """What re-sends a state key's sync (cmdgate.state.service.FifoSyncQueue)."""

    def schedule(self, key: str, version: int, *, repair: str | None = None) -> None: ...


@dataclass(frozen=True)
class HealerConfig:
    """Thresholds and bounds of one pass."""

    max_redrives: int = 2  # healer redrives per execution, in total
    stuck_grace_s: float = 60.0  # past the attempt's lease before a running execution counts as stuck
    # Queued this long (and not re-sent since) before its message is sent again: longer than a
    # retry waits for its message to come back (visibility timeout, backoff cap).
    queued_after_s: float = 600.0
    gist_drift_s: float = 300.0  # unsynced this long before a key's sync message is sent again
    batch: int = 100  # items per repair per pass
    dlq_visibility_s: int = 30  # a DLQ message being triaged is hidden this long


@dataclass
class PassReport:
    """What one pass did."""

    pass_id: str
    started_at: float
    actions: Counter[str] = field(default_factory=Counter)
    # The first MAX_REPORTED actions with what they acted on (the log has every one).
    acted_on: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    out_of_time: bool = False
    dead_letter_queues: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every repair ran without an error."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report (the function's answer and log line)."""
        return {
            "pass_id": self.pass_id,
            "ok": self.ok,
            "actions": dict(self.actions),
            "acted_on": self.acted_on,
            "errors": self.errors,
            "out_of_time": self.out_of_time,
            "dead_letter_queues": self.dead_letter_queues,
            "duration_s": round(self.duration_s, 3),
        }


ActionLog = Callable[[str, Mapping[str, Any]], None]


class Healer:
    """One pass over every repair; every collaborator is passed in (the composition root builds it)."""

    def __init__(
        self,
        *,
        sqs: Any,
        dynamodb: Any,
        repairs: ExecutionRepairs,
        executions_queue: MessageQueue,
        executions_dlq_url: str,
        dead_letter_queues: Mapping[str, str],
        sync: SyncScheduler,
        alerts: Alerts,
        state_table: str,
        control_table: str,
        retry_safe: Callable[[str], bool | None],
        config: HealerConfig | None = None,
        integrity: Callable[[], StateIntegrity] | None = None,
        events_queue_url: str = "",
        events_dlq_url: str = "",
        state_sync_dlq_url: str = "",
        log_action: ActionLog | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sqs = sqs
        self._dynamodb = dynamodb
        self._repairs = repairs
        self._executions_queue = executions_queue
        self._executions_dlq_url = executions_dlq_url
        self._dead_letter_queues = {name: url for name, url in dead_letter_queues.items() if url}
        self._sync = sync
        self._alerts = alerts
        self._state_table = state_table
        self._control_table = control_table
        self._retry_safe = retry_safe
        self._config = config or HealerConfig()
        self._integrity = integrity
        self._events_queue_url = events_queue_url
        self._events_dlq_url = events_dlq_url
        self._state_sync_dlq_url = state_sync_dlq_url
        self._log_action = log_action or (lambda action, fields: None)
        self._clock = clock
        self._monotonic = monotonic
        self._deadline = 0.0
        self._report = PassReport("", 0.0)

    def run(self, pass_id: str, budget_s: float) -> PassReport:
        """One pass, every repair in turn, stopping new work once `budget_s` is spent."""
        started = self._monotonic()
        self._deadline = started + max(0.0, budget_s)
        self._report = report = PassReport(pass_id, self._clock())
        repairs: list[tuple[str, Callable[[], None]]] = [
            ("dlq_triage", self._triage_dead_letters),
            ("events_dlq_triage", self._triage_events),
            ("state_sync_dlq_triage", self._triage_syncs),
            ("stuck_executions", self._repair_stuck),
            ("orphaned_queued", self._resend_queued),
            ("gist_drift", self._resync_drifted),
            ("state_integrity", self._check_integrity),
            ("dlq_depths", self._measure_dead_letter_queues),
        ]
        for name, repair in repairs:
            if self._out_of_time():
                break
            try:
                repair()
            except Exception as exc:  # noqa: BLE001 - one broken repair must not stop the others
                report.errors.append(f"{name}: {type(exc).__name__}")
                self._log_action("repair_failed", {"repair": name, "error_class": type(exc).__name__})
        report.duration_s = self._monotonic() - started
        if report.ok:
            self._record_pass(report)
        return report

    # -- bookkeeping ----------------------------------------------------------------

    def _out_of_time(self) -> bool:
        if self._monotonic() >= self._deadline:
            self._report.out_of_time = True
            return True
        return False

    def _act(self, action: str, **fields: Any) -> None:
        self._report.actions[action] += 1
        if len(self._report.acted_on) < MAX_REPORTED:
            self._report.acted_on.append({"action": action, **fields})
        self._log_action(action, {"correlation_id": self._report.pass_id, **fields})

    def _record_pass(self, report: PassReport) -> None:
        self._dynamodb.put_item(
            TableName=self._control_table,
            Item={
                "pk": {"S": LAST_PASS_KEY},
                "finished_at": {"N": str(round(self._clock(), 3))},
                "pass_id": {"S": report.pass_id},
                "actions": {"S": json.dumps(dict(report.actions))},
                "out_of_time": {"BOOL": report.out_of_time},
            },
        )

    # -- DLQ triage -----------------------------------------------------------------

    def _triage_dead_letters(self) -> None:
        self._each_dead_letter(self._executions_dlq_url, lambda message: self._triage(message.get("Body", "")))

    def _each_dead_letter(self, url: str, handle: Callable[[Mapping[str, Any]], bool]) -> None:
        """Up to a batch of the DLQ's messages, each handled in turn and deleted when `handle` says so."""
        if not url:
            return
        handled = 0
        while handled < self._config.batch and not self._out_of_time():
            messages = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, self._config.batch - handled),
                VisibilityTimeout=self._config.dlq_visibility_s,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return
            for message in messages:
                if handle(message):
                    self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1

    # -- events and state-sync DLQs -----------------------------------------------------

    def _triage_events(self) -> None:
        if self._events_queue_url:
            self._each_dead_letter(self._events_dlq_url, self._triage_event)

    def _triage_event(self, message: Mapping[str, Any]) -> bool:
        body = str(message.get("Body", ""))
        kind = _event_type_of(body)
        if kind is None:
            self._alerts.send(alert_names.POISON_MESSAGE, "events", "a dead-lettered event is not one cmdgate sends")
            self._act("event_poison_deleted")
            return True
        attribute = (message.get("MessageAttributes") or {}).get(REDRIVES_ATTRIBUTE, {})
        redrives = int(attribute.get("StringValue", "0")) if str(attribute.get("StringValue", "0")).isdigit() else 0
        if redrives >= self._config.max_redrives:
            cause = f"a {kind} event failed processing after {redrives} redrives"
            self._alerts.send(alert_names.POISON_MESSAGE, "events", cause)
            self._act("event_abandoned", event_type=kind, redrives=redrives)
            return True
        self._sqs.send_message(
            QueueUrl=self._events_queue_url,
            MessageBody=body,
            MessageAttributes={REDRIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(redrives + 1)}},
        )
        self._act("event_redriven", event_type=kind, redrives=redrives + 1)
        return True

    def _triage_syncs(self) -> None:
        if self._state_table:
            self._each_dead_letter(self._state_sync_dlq_url, self._triage_sync)

    def _triage_sync(self, message: Mapping[str, Any]) -> bool:
        from cmdgate.state.sync import parse_sync_message

        try:
            key = parse_sync_message(str(message.get("Body", "")))
        except ValueError:
            self._alerts.send(alert_names.POISON_MESSAGE, "state_sync", "a dead-lettered sync message names no key")
            self._act("sync_poison_deleted")
            return True
        item = self._dynamodb.get_item(
            TableName=self._state_table,
            Key={"pk": {"S": f"key#{key}"}, "sk": {"S": "register"}},
            ConsistentRead=True,
            ProjectionExpression="version, synced_version",
        ).get("Item")
        if not item or "version" not in item:
            self._alerts.send(alert_names.POISON_MESSAGE, "state_sync", "a dead-lettered sync message names no key")
            self._act("sync_poison_deleted", key=key)
            return True
        version = int(item["version"]["N"])
        if int(item.get("synced_version", {}).get("N", "0")) >= version:
            self._act("sync_dlq_already_synced", key=key, version=version)
            return True
        self._sync.schedule(key, version, repair=self._report.pass_id)
        self._act("sync_redriven", key=key, version=version)
        return True

    def _triage(self, body: str) -> bool:
        """Handle one dead-lettered message; True when it may be deleted from the DLQ."""
        execution_id = _execution_id_of(body)
        record = self._repairs.get(execution_id) if execution_id else None
        if execution_id is None or record is None:
            subject = execution_id or "unparseable message"
            self._alerts.send(alert_names.POISON_MESSAGE, subject, "a dead-lettered message names no execution")
            self._act("poison_deleted", execution_id=execution_id)
            return True
        status = record.get("status")
        if status in ("running",):
            # Its attempt still holds (or held) the lease: it finishes the run, or stuck-repair takes it.
            self._act("dlq_running_left", execution_id=execution_id)
            return True
        if status not in ("queued", "dead_lettered"):
            self._act("dlq_finished_deleted", execution_id=execution_id, status=status)
            return True
        error = _error_of(record)
        if _is_transient(error):
            redriven = self._repairs.redrive(
                execution_id, self._config.max_redrives, self._report.pass_id, int(self._clock())
            )
            if redriven is not None:
                try:
                    self._executions_queue.send({"execution_id": execution_id, "healer_pass": self._report.pass_id})
                except Exception:
                    self._repairs.undo_redrive(execution_id)
                    raise
                self._act("redriven", execution_id=execution_id, redrives=int(redriven.get("healer_redrives", 0)))
                return True
        if status == "queued":
            self._repairs.dead_letter(execution_id, error or _LOST_MESSAGE)
        cause = _cause_of(error, exhausted=_is_transient(error))
        self._alerts.send(alert_names.EXECUTION_DEAD_LETTERED, execution_id, cause)
        self._act("dead_lettered", execution_id=execution_id, cause=cause)
        return True

    # -- stuck executions -------------------------------------------------------------

    def _repair_stuck(self) -> None:
        now = self._clock()
        cutoff = now - self._config.stuck_grace_s
        for record in self._repairs.with_status("running", _iso(now), self._config.batch, lease_before=int(cutoff)):
            if self._out_of_time():
                return
            lease = record.get("lease_until")
            if lease is None or float(lease) >= cutoff:
                continue
            execution_id = str(record["execution_id"])
            attempts = int(record.get("attempts", 0))
            if self._is_retry_safe(record):
                error = ExecutionError(
                    code="WORKER_LOST", detail=f"Attempt {attempts}'s worker is gone; the run is retried.", status=503
                )
                if self._repairs.requeue_stuck(execution_id, attempts, int(lease), error, int(now)):
                    self._executions_queue.send({"execution_id": execution_id, "healer_pass": self._report.pass_id})
                    self._act("stuck_requeued", execution_id=execution_id, attempts=attempts)
                continue
            error = ExecutionError(
                code="WORKER_LOST",
                detail=f"Attempt {attempts}'s worker is gone and the command is not retry_safe.",
                status=500,
            )
            if self._repairs.fail_stuck(execution_id, attempts, int(lease), error):
                cause = f"{WORKER_LOST}: {record.get('command')} stuck running, not retry_safe"
                self._alerts.send(alert_names.EXECUTION_STUCK, execution_id, cause)
                self._act("stuck_failed", execution_id=execution_id, attempts=attempts)

    def _is_retry_safe(self, record: Mapping[str, Any]) -> bool:
        declared = record.get("retry_safe")
        if isinstance(declared, bool):
            return declared
        return bool(self._retry_safe(str(record.get("command", ""))))

    # -- queued records without a message ------------------------------------------------

    def _resend_queued(self) -> None:
        now = self._clock()
        threshold = self._config.queued_after_s
        for record in self._repairs.with_status("queued", _iso(now - threshold), self._config.batch):
            if self._out_of_time():
                return
            due = _epoch(record.get("next_attempt_at"))
            if due is not None and due > now - threshold:
                continue  # a retry is waiting out its backoff: its message is on its way back
            resent = _epoch(record.get("healer_resent_at"))
            if resent is not None and resent >= now - threshold:
                continue  # sent again within the threshold: its message is on its way
            execution_id = str(record["execution_id"])
            # Sent, then marked: a pass that dies in between leaves the record unmarked, so the next
            # pass sends it again (a second message is harmless: an attempt is claimed once). Marked
            # first, a killed pass would have left it unsent for a whole threshold (found by make chaos).
            self._executions_queue.send({"execution_id": execution_id, "healer_pass": self._report.pass_id})
            if self._repairs.mark_resent(execution_id, int(now), int(now - threshold)):
                self._act("queued_resent", execution_id=execution_id)

    # -- gist drift ---------------------------------------------------------------------

    def _resync_drifted(self) -> None:
        if not self._state_table:
            return
        cutoff = self._clock() - self._config.gist_drift_s
        kwargs: dict[str, Any] = {
            "TableName": self._state_table,
            "IndexName": "DirtyIndex",
            "FilterExpression": "dirty_at < :cutoff",
            "ExpressionAttributeValues": {":cutoff": {"N": str(round(cutoff, 3))}},
        }
        resent = 0
        while resent < self._config.batch and not self._out_of_time():
            page = self._dynamodb.scan(**kwargs)
            for item in page.get("Items", []):
                pk = item.get("pk", {}).get("S", "")
                if not pk.startswith("key#") or item.get("sk", {}).get("S") != "register":
                    continue
                key = pk[len("key#") :]
                version = self._unsynced_version(pk, cutoff)
                if version is None:
                    continue  # synced (or written again) since the index was read
                self._sync.schedule(key, version)
                self._act("gist_resynced", key=key, version=version)
                resent += 1
                if resent >= self._config.batch or self._out_of_time():
                    return
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _unsynced_version(self, pk: str, cutoff: float) -> int | None:
        item = self._dynamodb.get_item(
            TableName=self._state_table,
            Key={"pk": {"S": pk}, "sk": {"S": "register"}},
            ConsistentRead=True,
            ProjectionExpression="version, dirty_at",
        ).get("Item")
        if not item or "dirty_at" not in item or "version" not in item:
            return None
        if float(item["dirty_at"]["N"]) >= cutoff:
            return None
        return int(item["version"]["N"])

    # -- gist files and registers that fail their checks ------------------------------------

    def _check_integrity(self) -> None:
        if self._integrity is None or not self._state_table:
            return
        item = self._dynamodb.get_item(
            TableName=self._control_table, Key={"pk": {"S": INTEGRITY_CURSOR_KEY}}, ConsistentRead=True
        ).get("Item")
        cursor = item.get("start", {}).get("S") if item else None
        start = json.loads(cursor) if cursor else None

        def alert(key: str, cause: str) -> None:
            self._alerts.send(alert_names.STATE_REPAIRED, key, cause)

        report = self._integrity().check(start, self._report.pass_id, alert, self._out_of_time)
        for action, fields in report.actions:
            self._act(action, **fields)
        checked = {"integrity_registers_checked": report.registers, "integrity_files_checked": report.files}
        for counted, number in checked.items():
            if number:
                self._report.actions[counted] += number
        self._dynamodb.put_item(
            TableName=self._control_table,
            Item={
                "pk": {"S": INTEGRITY_CURSOR_KEY},
                "start": {"S": json.dumps(report.next_start) if report.next_start else ""},
            },
        )

    # -- every DLQ's depth -------------------------------------------------------------------

    def _measure_dead_letter_queues(self) -> None:
        for name, url in self._dead_letter_queues.items():
            depth = queue_depth(self._sqs, name, url).total
            self._report.dead_letter_queues[name] = depth
            if depth:
                self._alerts.send(alert_names.DLQ_NOT_EMPTY, name, f"the {name} dead-letter queue holds messages")


_LOST_MESSAGE = ExecutionError(
    code="DEAD_LETTERED", detail="The execution's message was dead-lettered before an attempt ended.", status=500
)


def _execution_id_of(body: str) -> str | None:
    try:
        message = json.loads(body)
    except ValueError:
        return None
    execution_id = message.get("execution_id") if isinstance(message, dict) else None
    if isinstance(execution_id, str) and 0 < len(execution_id) <= 64 and execution_id.isalnum():
        return execution_id
    return None


def _event_type_of(body: str) -> str | None:
    """The type of an event cmdgate sends, or None (not JSON, not an object, another type)."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) and kind in EVENT_TYPES else None


def _error_of(record: Mapping[str, Any]) -> ExecutionError | None:
    error = record.get("error")
    if not isinstance(error, Mapping) or "code" not in error:
        return None
    return ExecutionError(
        code=str(error["code"]), detail=str(error.get("detail", "")), status=int(error.get("status", 500))
    )


def _is_transient(error: ExecutionError | None) -> bool:
    """No recorded error (the message died before an attempt ended) or a retryable one."""
    return error is None or error.status in TRANSIENT_STATUSES or error.code in TRANSIENT_CODES


def _cause_of(error: ExecutionError | None, *, exhausted: bool) -> str:
    what = f"{error.code}: {error.detail}" if error else "no attempt ended"
    return f"{what} ({'redrives exhausted' if exhausted else 'not transient'})"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(value: Any) -> float | None:
    """An epoch-seconds number or an RFC 3339 timestamp, read defensively (None when neither)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def last_pass_age_s(dynamodb: Any, control_table: str, now: float) -> float | None:
    """Seconds since the healer's last successful pass (None if it never recorded one)."""
    item = dynamodb.get_item(TableName=control_table, Key={"pk": {"S": LAST_PASS_KEY}}, ConsistentRead=True).get("Item")
    if not item or "finished_at" not in item:
        return None
    return max(0.0, now - float(item["finished_at"]["N"]))
