"""Submitting, running and reading executions: the api function's and the worker's logic."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ValidationError

from cmdgate import errors
from cmdgate.alerts import POISON_MESSAGE
from cmdgate.audit.stamp import AuditStamp
from cmdgate.auth import Principal
from cmdgate.authz import authorize, authorize_command, may, may_run
from cmdgate.aws_errors import is_condition_failure
from cmdgate.commands import CommandContext, CommandRegistry, CommandServices, CommandSpec, NoServices
from cmdgate.executions.model import Execution, ExecutionError, Status, utc_now_iso
from cmdgate.executions.queue import MessageQueue, PoisonMessage, attempt_limit, parse_execution_message
from cmdgate.executions.runner import Outcome, run_attempt
from cmdgate.executions.secrets import ParamSecrets, redacted
from cmdgate.executions.store import QUEUE_UNAVAILABLE, ExecutionStore
from cmdgate.http import parse_json
from cmdgate.ratelimit.policy import RateLimitPolicy
from cmdgate.retry import full_jitter

logger = Logger(child=True)
# An attempt's lease: renewed every HEARTBEAT_S while the attempt runs, so a worker that dies (a killed
# runtime, a crashed environment) loses it within ATTEMPT_LEASE_S and a redelivery reclaims it.
ATTEMPT_LEASE_S = 10.0
HEARTBEAT_S = 3.0
# The worker stops a command this long before its Lambda's own deadline (to record it and answer).
WORKER_DEADLINE_MARGIN_S = 3.0
MIN_ATTEMPT_S = 1.0  # less time than this left in the invocation: the message comes back instead
LEASE_HELD = "another attempt holds the lease"
MAX_WAIT_S = 20  # GET /v1/executions/{id}?wait=N
MAX_WAIT_READS = 25  # reads of one long poll: 0.1, 0.2, 0.4, 0.8 s apart, then 1 s (20 s take 24)
Alert = Callable[[str, str, str], object]  # (alert name, affected id, one-line cause)


def _no_alert(alert: str, affected_id: str, cause: str) -> None:
    logger.error("alert", extra={"alert": alert, "affected_id": affected_id, "cause": cause})


@dataclass(frozen=True)
class Submission:
    """What the API answers for a started command, success or failure (this is what idempotency stores)."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def to_http(self, request_id: str | None = None) -> dict[str, Any]:
        """A JSON-serialisable response: status, headers (Content-Type included) and body.

        A problem carries `request_id` like every other problem; what is stored for replay keeps
        the id of the request that ran the command (a replay's own id is in its X-Request-Id).
        """
        problem = self.content_type == errors.PROBLEM_CONTENT_TYPE and request_id
        return {
            "status": self.status_code,
            "headers": {"Content-Type": self.content_type, **self.headers},
            "body": {**self.body, "request_id": request_id} if problem else self.body,
        }


@dataclass(frozen=True)
class PreparedRun:
    """A request that passed every check made before a command starts."""

    spec: CommandSpec
    params: BaseModel
    raw_params: dict[str, Any]
    run_async: bool
    preference_applied: bool
    callback_url: str | None = None  # checked by cmdgate.callbacks.parse_callback_url


class ExecutionService:
    """Runs commands sync or hands them to the worker through SQS."""

    def __init__(
        self,
        store: ExecutionStore,
        executions_queue: MessageQueue,
        events_queue: MessageQueue | None,
        registry: CommandRegistry,
        *,
        services: CommandServices | None = None,
        secrets: ParamSecrets | None = None,
        max_result_bytes: int = 256 * 1024,
        max_receive_count: int = 3,
        execution_ttl_s: int = 30 * 86400,
        audit_retention_s: int = 400 * 86400,
        retry_base_s: float = 1.0,
        retry_cap_s: float = 300.0,
        alert: Alert | None = None,
        lease_s: float = ATTEMPT_LEASE_S,
        heartbeat_s: float = HEARTBEAT_S,
        holder: str = "",
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._executions_queue = executions_queue
        self._events_queue = events_queue
        self._registry = registry
        self._services: CommandServices = services or NoServices()
        self._secrets = secrets or ParamSecrets(None)
        self._max_result_bytes = max_result_bytes
        self._max_receive_count = max_receive_count
        self._execution_ttl_s = execution_ttl_s
        self._audit_retention_s = audit_retention_s
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._alert = alert or _no_alert
        self._lease_s = lease_s
        self._heartbeat_s = heartbeat_s
        self._holder = holder  # this worker environment (its log stream), recorded with each lease it takes
        self._clock = clock
        self._rand = rand

    def list_commands(
        self, principal: Principal, limit: int = 100, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the commands this principal may run (by name), and the last name if more follow."""
        allowed = [s for s in self._registry.all() if may_run(principal, s) and (after is None or s.name > after)]
        page = allowed[:limit]
        return [spec.describe() for spec in page], page[-1].name if len(allowed) > limit else None

    def own_rate_limit(self, principal: Principal, name: str) -> tuple[str, RateLimitPolicy] | None:
        """(bucket slot, policy) of a command with a limit of its own, for a caller who may run it.

        Nobody else learns of the command from its RateLimit fields (403 before 404).
        """
        spec = self._registry.get(name)
        if spec is None or spec.rate_limit is None or not may_run(principal, spec):
            return None
        return spec.name, spec.rate_limit

    def resolve_command(self, principal: Principal, name: str) -> CommandSpec:
        """The command, if the principal may run it (403 before 404, so the catalogue does not leak)."""
        spec = self._registry.get(name)
        if spec is None:
            authorize(principal, "commands.run", name)  # a 403 for a name it could not run anyway
            raise errors.CommandNotFound(f"No command named {name!r}.")
        if not may_run(principal, spec):
            raise errors.Forbidden(f"Not permitted to run command {name!r}.")
        return spec

    def submit(
        self, principal: Principal, name: str, body: str | None, prefer_async: bool, audit: AuditStamp | None = None
    ) -> Submission:
        """Validate, then run now (sync) or queue (async)."""
        return self.start(principal, self.prepare(principal, name, body, prefer_async), audit)

    def prepare(
        self,
        principal: Principal,
        name: str,
        body: str | None,
        prefer_async: bool,
        callback_url: str | None = None,
    ) -> PreparedRun:
        """Every check made before a command starts or is queued (403, 404, 400, 422); raises ProblemError."""
        spec = self.resolve_command(principal, name)
        raw = parse_json_object(body)
        try:
            params = spec.parse_params(raw)
        except ValidationError as exc:
            raise errors.ValidationFailed(errors.validation_errors_from_pydantic(exc.errors())) from None
        authorize_command(principal, spec, params)  # the state keys its params name
        run_async = (prefer_async and "async" in spec.modes) or "sync" not in spec.modes
        return PreparedRun(
            spec,
            params,
            raw,
            run_async,
            preference_applied=prefer_async and run_async,
            callback_url=callback_url,
        )

    def start(
        self,
        principal: Principal,
        prepared: PreparedRun,
        audit: AuditStamp | None = None,
        execution_id: str | None = None,
    ) -> Submission:
        """Run now (sync) or queue (async); a command's own failure is an answer, not an exception.

        With `audit` (the request's stamp) the record is the run's audit entry and is kept for the
        audit retention when that is longer than the executions' own.

        `execution_id` (keyed_execution_id of an Idempotency-Key) makes a run started again under the
        same key the same execution: when the key's stored answer was lost (its idempotency record not
        saved, then expired) a retry runs nothing twice - an async run already queued is answered as it
        is, a sync run that succeeded replays its result, and a command run again finds its effects
        (keyed by the execution id) already applied.
        """
        if execution_id is not None:
            existing = self._store.get(execution_id)
            if existing is not None and existing.mode == "async" and _never_queued(existing):
                # The first try answered 503 (its message could not be sent): this retry queues it.
                requeued = self._store.requeue_unqueued(execution_id)
                if requeued is not None:
                    return self._send(requeued, preference_applied=prepared.preference_applied)
                existing = self._store.get(execution_id)
            if existing is not None and existing.mode == "async":
                return self._answer_queued(existing)
            if existing is not None and existing.status == "succeeded":
                return Submission(
                    200,
                    {
                        "execution_id": existing.execution_id,
                        "command": existing.command,
                        "status": "succeeded",
                        "result": existing.result,
                    },
                )
        execution = self._record(principal, prepared, execution_id or uuid.uuid4().hex, audit)
        if prepared.run_async:
            try:
                return self._enqueue(execution, preference_applied=prepared.preference_applied)
            except Exception as exc:
                if execution_id is None or not is_condition_failure(exc):
                    raise
            existing = self._store.get(execution_id)  # a concurrent call created it first
            if existing is None:
                raise errors.DependencyUnavailable("The execution record could not be read.")
            return self._answer_queued(existing)
        return self._run_sync(prepared.spec, execution, prepared.params)

    def _answer_queued(self, existing: Execution) -> Submission:
        """202 for an async run that exists; its message sent again while it is queued and unattempted."""
        if existing.status == "queued" and existing.attempts == 0:
            self._executions_queue.send({"execution_id": existing.execution_id})
        headers = {"Location": f"/v1/executions/{existing.execution_id}"}
        return Submission(202, {"execution_id": existing.execution_id, "status": existing.status}, headers)

    def start_once(
        self,
        principal: Principal,
        prepare: Callable[[], PreparedRun],
        execution_id: str,
        audit: AuditStamp,
    ) -> tuple[Submission, bool]:
        """Queue an async run under `execution_id` (derived by the caller from `audit.idempotency_key`, e.g.
        a webhook's delivery id): the first call prepares, creates and queues it, every later one answers
        the same execution (202) and runs nothing again. Returns (answer, created). `prepare` runs only
        when no record exists yet.

        A later call re-sends the message only while the run is queued and unattempted (the first call's
        send may have been lost); a duplicate message finds the attempt taken or the run finished.
        """
        existing = self._store.get(execution_id)
        if existing is None:
            prepared = prepare()
            if not prepared.run_async:
                raise errors.BadRequest(f"Command {prepared.spec.name!r} does not run async.")
            execution = self._record(principal, prepared, execution_id, audit)
            try:
                return self._enqueue(execution, preference_applied=False), True
            except Exception as exc:
                if not is_condition_failure(exc):
                    raise
            existing = self._store.get(execution_id)  # a concurrent call created it first
            if existing is None:
                raise errors.DependencyUnavailable("The execution record could not be read.")
        return self._answer_queued(existing), False

    def _record(
        self, principal: Principal, prepared: PreparedRun, execution_id: str, audit: AuditStamp | None
    ) -> Execution:
        """The new record of a prepared run (queued); with `audit`, also the run's audit entry."""
        spec, params, run_async = prepared.spec, prepared.params, prepared.run_async
        ttl_s = self._execution_ttl_s if audit is None else max(self._execution_ttl_s, self._audit_retention_s)
        # Secret params: sealed for the worker (async), redacted where nobody reads them again (sync).
        stored, sealed = self._secrets.seal(execution_id, params) if run_async else (redacted(params), None)
        return Execution(
            execution_id=execution_id,
            command=spec.name,
            principal_id=principal.principal_id,
            mode="async" if run_async else "sync",
            status="queued",
            params=stored,
            secrets=sealed,
            created_at=utc_now_iso(),
            expires_at=int(self._clock()) + ttl_s,
            permissions=principal.permissions,
            audit=audit.fields(execution_id, "command.run") if audit is not None else {},
            # Due at once: written before its message is sent, so a record whose message was never sent
            # (the api function died in between) is a `queued` record long past its next_attempt_at.
            next_attempt_at=int(self._clock()) if run_async else None,
            retry_safe=spec.retry_safe,
            callback_url=prepared.callback_url,
        )

    def get(self, principal: Principal, execution_id: str) -> Execution:
        """An execution its creator (or admin) may see; anyone else gets 404."""
        execution = self._store.get(execution_id) if _looks_like_id(execution_id) else None
        if execution is None or not may(principal, "executions.read", execution.principal_id):
            raise errors.ExecutionNotFound(f"No execution {execution_id!r}.")
        return execution

    def wait(
        self, principal: Principal, execution_id: str, wait_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> tuple[Execution, float]:
        """The execution once it is finished or `wait_s` passed (a bounded number of reads), and the seconds waited."""
        execution = self.get(principal, execution_id)
        started = time.monotonic()
        deadline, interval, reads = started + max(0.0, min(MAX_WAIT_S, wait_s)), 0.1, 1
        while not execution.finished and reads < MAX_WAIT_READS:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sleep(min(interval, left))
            interval = min(1.0, interval * 2)
            execution = self._store.get(execution_id) or execution
            reads += 1
        return execution, time.monotonic() - started

    def cancel(self, principal: Principal, execution_id: str) -> Execution:
        """Cancel an execution the caller may read: queued -> cancelled, running -> cancel_requested (409 if ended)."""
        before = self.get(principal, execution_id)
        after = self._store.cancel(execution_id) if before.mode == "async" else before
        if after is None:
            raise errors.ExecutionNotFound(f"No execution {execution_id!r}.")
        if after.status in ("succeeded", "failed", "dead_lettered"):
            raise errors.ExecutionFinished(f"Execution {execution_id!r} already ended {after.status}.")
        if before.status == "queued" and after.status == "cancelled":
            self._publish_executed(after, "cancelled")
        return after

    def process_message(
        self,
        body: str,
        receive_count: int = 1,
        *,
        receipt_handle: str | None = None,
        remaining_s: Callable[[], float] | None = None,
    ) -> None:
        """Worker: run one queued execution; raise to have SQS redeliver it (after the visibility set here).

        `remaining_s` is the Lambda's own time left: the command is stopped before it (and the message comes
        back). A message naming no execution is acknowledged and alerted (poison: no retry can fix it).
        """
        delivery = _Delivery(body, receive_count, receipt_handle)
        try:
            execution_id = parse_execution_message(body)
        except PoisonMessage as poison:
            self._poison("-", str(poison))
            return
        record = self._store.get(execution_id)
        if record is None:
            self._poison(execution_id, "the message names an execution that has no record")
            return
        if record.finished:
            logger.info("execution already finished; message acknowledged", extra={"execution_id": execution_id})
            return
        now = self._clock()
        if record.status == "running" and record.lease_until is not None and record.lease_until >= now:
            # Another attempt holds the lease (a duplicate delivery, or an early redelivery): come back when
            # the lease ends, instead of failing the delivery and burning receives.
            self._come_back(delivery, math.ceil(record.lease_until - now) + 1, LEASE_HELD)
            return
        spec = self._registry.get(record.command)
        budget_s, capped = spec.timeout_s if spec else 0.0, False
        if spec is not None and remaining_s is not None:
            available = remaining_s() - WORKER_DEADLINE_MARGIN_S
            if available < min(spec.timeout_s, MIN_ATTEMPT_S):
                self._come_back(delivery, 0, "too little time left in this invocation")
                return
            if available < spec.timeout_s:
                budget_s, capped = available, True
        running = self._store.begin_attempt(execution_id, self._lease_s, now, self._holder)
        if running is None:
            current = self._store.get(execution_id)
            if current is not None and current.status == "running" and current.lease_until is not None:
                self._come_back(delivery, max(1, math.ceil(current.lease_until - now) + 1), LEASE_HELD)
                return
            logger.info("execution not claimable; message acknowledged", extra={"execution_id": execution_id})
            return
        if spec is None:
            # The command is gone from the catalogue (its pack was disabled): no attempt can run it.
            self._finish(running, "failed", UNKNOWN_COMMAND)
            return
        if record.status == "running":  # a lease whose holder is gone: reclaimed
            if running.cancel_requested:
                self._finish(running, "cancelled", CANCELLED)
                return
            if not spec.retry_safe:
                self._finish(running, "failed", ABANDONED)
                return
        if running.cancel_requested:
            self._finish(running, "cancelled", CANCELLED)
            return
        try:
            params = spec.parse_params(self._secrets.open(execution_id, running.params, running.secrets))
        except ValidationError:
            # The stored params no longer fit the command (its model changed): no attempt can run them.
            # Never logged: pydantic's message quotes the input, opened secrets included.
            self._finish(running, "failed", STALE_PARAMS)
            return
        except Exception:
            # Opening the sealed secrets failed (KMS throttled or down): retried like a transient failure,
            # so the record is given back instead of staying `running` behind its lease.
            logger.exception("secret params not opened", extra={"execution_id": execution_id})
            self._retry_or_dead_letter(running, SECRETS_UNAVAILABLE, delivery)
            return
        try:
            # Again, with the permissions the run was authorized with: an async run can do no more
            # than a sync one (and a record without them - written before they were kept - nothing).
            authorize_command(Principal(running.principal_id, running.permissions), spec, params)
        except errors.ProblemError as refused:
            self._finish(running, "failed", _refusal_outcome(refused))
            return
        probe = functools.partial(self._store.cancel_requested, execution_id)
        with self._heartbeat(running):
            outcome = self._attempt(spec, running, params, budget_s=budget_s, cancel_probe=probe)
        if outcome.ok:
            self._finish(running, "succeeded", outcome)
            return
        if outcome.cancelled:
            self._finish(running, "cancelled", outcome)
            return
        if outcome.code == "COMMAND_TIMEOUT" and capped:
            outcome = WORKER_DEADLINE  # stopped before the Lambda's deadline, not the command's own timeout
        elif outcome.code == "COMMAND_TIMEOUT" and spec.retry_safe:
            outcome = replace(outcome, retryable=True)
        if not outcome.retryable:
            self._finish(running, "failed", outcome)
            return
        self._retry_or_dead_letter(running, outcome, delivery)

    def _retry_or_dead_letter(self, running: Execution, outcome: Outcome, delivery: _Delivery) -> None:
        """A retryable failure: dead-lettered when no attempt is left, else queued again for after a backoff."""
        execution_id = running.execution_id
        if self._store.cancel_requested(execution_id):
            self._finish(running, "cancelled", CANCELLED)
            return
        limit = attempt_limit(delivery.body)
        if limit is not None and running.attempts >= limit:
            # A redrive gives exactly one new attempt: dead-lettered again, and this message is done.
            self._finish(running, "dead_lettered", outcome)
            return
        if running.attempts >= self._max_receive_count:
            self._finish(running, "dead_lettered", outcome)
            # The message goes on to the DLQ (its next receive is past maxReceiveCount): at once, not after
            # the visibility timeout. A copy sent after a lease wait has receives left: it is done here.
            if delivery.receive_count >= self._max_receive_count:
                self._change_visibility(delivery, 0)
                raise RetryableFailure(f"attempt {running.attempts} of {execution_id} failed: dead-lettered")
            return
        # Exponential backoff with full jitter (cmdgate.retry), set as the message's visibility.
        delay_s = math.ceil(full_jitter(running.attempts - 1, self._retry_base_s, self._retry_cap_s, self._rand))
        self._store.finish(
            execution_id,
            running.attempts,
            "queued",
            error=_error_of(outcome),
            next_attempt_at=int(self._clock()) + delay_s,
        )
        self._come_back(delivery, delay_s, f"attempt {running.attempts} of {execution_id} failed: {outcome.code}")

    def _come_back(self, delivery: _Delivery, delay_s: int, reason: str) -> None:
        """Have the message delivered again in `delay_s` s: its visibility is set and the delivery fails.

        On the last receive SQS allows, failing would move it to the DLQ, so a fresh copy is sent (hidden for
        `delay_s`) and this one is acknowledged: waiting for a lease or a backoff never burns the receive count.
        """
        if delivery.receive_count < self._max_receive_count or delivery.receipt_handle is None:
            self._change_visibility(delivery, delay_s)
            raise AttemptInProgress(reason) if reason == LEASE_HELD else RetryableFailure(reason)
        self._executions_queue.send(json.loads(delivery.body), delay_s=delay_s)
        logger.info("message sent again", extra={"reason": reason, "delay_s": delay_s})

    @contextlib.contextmanager
    def _heartbeat(self, running: Execution) -> Iterator[None]:
        """Renew the attempt's lease every `heartbeat_s` while the block runs (stops when the attempt lost it)."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self._heartbeat_s):
                try:
                    kept = self._store.renew_lease(
                        running.execution_id, running.attempts, self._clock() + self._lease_s
                    )
                except Exception:  # the next beat tries again; the lease outlives a few misses
                    logger.warning("lease not renewed", exc_info=True)
                    continue
                if not kept:
                    return

        beat = threading.Thread(target=renew, name=f"lease-{running.execution_id}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join(timeout=2)

    def _change_visibility(self, delivery: _Delivery, visibility_s: int) -> None:
        if delivery.receipt_handle is None:
            return
        try:
            self._executions_queue.change_visibility(delivery.receipt_handle, visibility_s)
        except Exception:
            # The message still returns, after the queue's visibility timeout.
            logger.warning("visibility not changed", exc_info=True)

    def _poison(self, execution_id: str, cause: str) -> None:
        """A message no retry can fix: acknowledged, and alerted."""
        logger.error("poison message acknowledged", extra={"execution_id": execution_id, "cause": cause})
        try:
            self._alert(POISON_MESSAGE, execution_id, cause)
        except Exception:
            logger.exception("poison message alert not published")

    def find(self, execution_id: str) -> Execution | None:
        """Any execution record (the event processor's reads; no principal check)."""
        return self._store.get(execution_id) if _looks_like_id(execution_id) else None

    def enqueue_follow_up(self, parent: Execution, slot: str, name: str, raw: dict[str, Any]) -> str | None:
        """Queue the follow-up in `slot` of a finished `parent`, once: its id derives from the parent's, so a
        redelivered event finds it already there (and only re-sends its message while it is still queued).

        It runs with the permissions the parent was authorized with, one step deeper in the chain.
        Returns its id, or None when it may not run (unknown command, params that do not fit, refused).
        """
        execution_id = follow_up_id(parent.execution_id, slot, name)
        existing = self._store.get(execution_id)
        if existing is None:
            runner = Principal(parent.principal_id, parent.permissions)
            spec = self._registry.get(name)
            if spec is None or "async" not in spec.modes:
                logger.warning(
                    "follow-up names no async command", extra={"parent": parent.execution_id, "command": name}
                )
                return None
            try:
                params = spec.parse_params(raw)
                authorize_command(runner, spec, params)
            except (ValidationError, errors.ProblemError):
                logger.warning("follow-up refused", extra={"parent": parent.execution_id, "command": name})
                return None
            stored, sealed = self._secrets.seal(execution_id, params)
            existing = Execution(
                execution_id=execution_id,
                command=spec.name,
                principal_id=parent.principal_id,
                mode="async",
                status="queued",
                params=stored,
                secrets=sealed,
                created_at=utc_now_iso(),
                expires_at=int(self._clock()) + self._execution_ttl_s,
                permissions=parent.permissions,
                parent_execution_id=parent.execution_id,
                chain_depth=parent.chain_depth + 1,
                next_attempt_at=int(self._clock()),  # due at once; the healer re-sends a lost message
                retry_safe=spec.retry_safe,
            )
            try:
                self._store.create(existing)
            except Exception as exc:
                if not is_condition_failure(exc):
                    raise
                existing = self._store.get(execution_id) or existing  # a concurrent delivery created it
        if existing.status == "queued" and existing.attempts == 0:
            # Not run yet: (re)send its message; a duplicate message finds the attempt taken or the run finished.
            self._executions_queue.send({"execution_id": execution_id})
        return execution_id

    def dead_letters(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Execution], dict[str, Any] | None]:
        """Dead-lettered executions (for `GET /v1/admin/dlq`)."""
        return self._store.dead_letters(limit, start)

    def redrive(self, execution_ids: list[str] | None) -> dict[str, list[str]]:
        """Give each dead-lettered execution exactly one new attempt (all of the first page when no ids)."""
        if execution_ids is None:
            execution_ids = [e.execution_id for e in self._store.dead_letters(100, None)[0]]
        redriven, skipped = [], []
        for execution_id in dict.fromkeys(execution_ids):
            queued = self._store.redrive(execution_id) if _looks_like_id(execution_id) else None
            if queued is None:
                skipped.append(execution_id)  # unknown, not dead-lettered, or another redrive won
                continue
            try:
                self._executions_queue.send({"execution_id": execution_id, "attempt_limit": queued.attempts + 1})
            except Exception:
                logger.exception("redrive not queued", extra={"execution_id": execution_id})
                self._store.undo_redrive(execution_id)
                skipped.append(execution_id)
                continue
            redriven.append(execution_id)
        return {"redriven": redriven, "skipped": skipped}

    def _enqueue(self, execution: Execution, *, preference_applied: bool) -> Submission:
        self._store.create(execution)
        return self._send(execution, preference_applied=preference_applied)

    def _send(self, execution: Execution, *, preference_applied: bool) -> Submission:
        """Send a `queued` record's message; if it cannot be sent, the record fails QUEUE_UNAVAILABLE (503)."""
        try:
            self._executions_queue.send({"execution_id": execution.execution_id})
        except Exception:
            logger.exception("could not queue execution", extra={"execution_id": execution.execution_id})
            claimed = self._store.begin_attempt(execution.execution_id, 0, self._clock())
            self._store.finish(
                execution.execution_id,
                claimed.attempts if claimed else 1,
                "failed",
                error=ExecutionError(code="QUEUE_UNAVAILABLE", detail="The execution could not be queued.", status=503),
            )
            raise errors.DependencyUnavailable(
                "The executions queue is unavailable.", headers={"Retry-After": "5"}
            ) from None
        headers = {"Location": f"/v1/executions/{execution.execution_id}"}
        if preference_applied:
            headers["Preference-Applied"] = "respond-async"
        return Submission(202, {"execution_id": execution.execution_id, "status": "queued"}, headers)

    def _run_sync(self, spec: CommandSpec, execution: Execution, params: Any) -> Submission:
        # One write, once the outcome is known: the caller learns the execution id only from
        # this answer, so nobody can look for the record earlier, and a run whose Lambda dies
        # is still covered by the idempotency record (in progress until it expires).
        running = execution.model_copy(update={"status": "running", "attempts": 1, "started_at": execution.created_at})
        outcome = self._attempt(spec, running, params)
        status: Status = "succeeded" if outcome.ok else "failed"
        finished = running.model_copy(
            update={
                "status": status,
                "finished_at": utc_now_iso(),
                "result": outcome.result if outcome.ok else None,
                "error": None if outcome.ok else _error_of(outcome),
            }
        )
        try:
            self._store.create(finished)
        except Exception:
            # The command ran: its answer must still be given (and stored for replay), or a retry
            # would run it again. Only the record is lost; the log line keeps the outcome.
            logger.exception(
                "execution record not written",
                extra={"execution_id": finished.execution_id, "status": status, "command": spec.name},
            )
        else:
            self._publish_executed(finished, status, outcome.duration_ms)
        if outcome.ok:
            return Submission(
                200,
                {
                    "execution_id": execution.execution_id,
                    "command": spec.name,
                    "status": "succeeded",
                    "result": outcome.result,
                },
            )
        problem = _problem_of(outcome, execution.execution_id)
        if not outcome.started:
            raise problem  # refused before any effect: not an outcome to store for replay
        return Submission(
            problem.status, problem.to_problem(), dict(problem.headers), content_type=errors.PROBLEM_CONTENT_TYPE
        )

    def _attempt(
        self,
        spec: CommandSpec,
        execution: Execution,
        params: Any,
        *,
        budget_s: float | None = None,
        cancel_probe: Callable[[], bool] | None = None,
    ) -> Outcome:
        context = CommandContext(
            execution_id=execution.execution_id,
            principal_id=execution.principal_id,
            attempt=execution.attempts,
            deadline=time.monotonic() + (spec.timeout_s if budget_s is None else budget_s),
            services=self._services,
            cancel_probe=cancel_probe,
        )
        logger.info(
            "command attempt started",
            extra={"execution_id": execution.execution_id, "command": spec.name, "attempt": execution.attempts},
        )
        started = time.monotonic()
        outcome = run_attempt(spec, params, context, self._max_result_bytes)
        outcome = dataclasses.replace(outcome, duration_ms=round((time.monotonic() - started) * 1000, 1))
        logger.info(
            "command attempt finished",
            extra={
                "execution_id": execution.execution_id,
                "command": spec.name,
                "attempt": execution.attempts,
                "ok": outcome.ok,
                "code": outcome.code or None,
                "duration_ms": outcome.duration_ms,
            },
        )
        return outcome

    def _finish(self, execution: Execution, status: Any, outcome: Outcome) -> None:
        error = None if outcome.ok else _error_of(outcome)
        if not self._store.finish(
            execution.execution_id, execution.attempts, status, result=outcome.result, error=error
        ):
            logger.warning("execution was no longer running", extra={"execution_id": execution.execution_id})
            return
        self._publish_executed(execution, status, outcome.duration_ms)

    def _publish_executed(self, execution: Execution, status: str, duration_ms: float = 0.0) -> None:
        if self._events_queue is None:
            return
        try:
            self._events_queue.send(
                {
                    "type": "command.executed",
                    "execution_id": execution.execution_id,
                    "command": execution.command,
                    "status": status,
                    "duration_ms": duration_ms,
                    "principal": execution.principal_id,
                    "principal_id": execution.principal_id,
                    "attempts": execution.attempts,
                    "callback": execution.callback_url is not None,
                }
            )
        except Exception:
            # The execution's outcome is already stored; a lost event only skews stats.
            logger.exception("could not publish command.executed", extra={"execution_id": execution.execution_id})


class RetryableFailure(Exception):
    """An attempt failed in a way worth retrying: SQS redelivers the message."""


class AttemptInProgress(RetryableFailure):
    """Another attempt holds the execution's lease; the message returns when the lease ends."""


@dataclass(frozen=True)
class _Delivery:
    """One receipt of an executions-queue message."""

    body: str
    receive_count: int
    receipt_handle: str | None


def parse_json_object(body: str | None) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is `{}`)."""
    if body is None or not body.strip():
        return {}
    value = parse_json(body)
    if not isinstance(value, dict):
        raise errors.InvalidJson("The request body must be a JSON object.")
    return value


def _never_queued(execution: Execution) -> bool:
    """An async execution whose message could not be sent (it failed before any attempt ran)."""
    return execution.status == "failed" and execution.error is not None and execution.error.code == QUEUE_UNAVAILABLE


def keyed_execution_id(principal_id: str, idempotency_key: str, fingerprint: str) -> str:
    """The id of the run a principal starts under an Idempotency-Key (with that request's fingerprint)."""
    return hashlib.sha256(f"command.run\n{principal_id}\n{idempotency_key}\n{fingerprint}".encode()).hexdigest()[:32]


def follow_up_id(parent_id: str, slot: str, name: str) -> str:
    """The id of a parent's follow-up (`slot` says which one): the same for every delivery of the parent's event."""
    return hashlib.sha256(f"follow-up\n{parent_id}\n{slot}\n{name}".encode()).hexdigest()[:32]


def _looks_like_id(execution_id: str) -> bool:
    return 0 < len(execution_id) <= 64 and execution_id.isalnum()


STALE_PARAMS = Outcome(
    False, status=422, code="VALIDATION_FAILED", detail="The stored params no longer fit the command's params model."
)
UNKNOWN_COMMAND = Outcome(
    False, status=404, code="COMMAND_NOT_FOUND", detail="The execution's command is no longer in the catalogue."
)
ABANDONED = Outcome(
    False,
    status=500,
    code="ATTEMPT_ABANDONED",
    detail="An attempt stopped mid-run (its worker was lost) and the command is not retry-safe.",
)
CANCELLED = Outcome(
    False, status=409, code="EXECUTION_CANCELLED", detail="The execution was cancelled.", cancelled=True
)
WORKER_DEADLINE = Outcome(
    False,
    status=504,
    code="WORKER_DEADLINE",
    detail="The attempt was stopped before the worker's own deadline; it is retried.",
    retryable=True,
)
SECRETS_UNAVAILABLE = Outcome(
    False,
    status=503,
    code="DEPENDENCY_UNAVAILABLE",
    detail="The run's secret params could not be opened.",
    retryable=True,
)


def _refusal_outcome(refused: errors.ProblemError) -> Outcome:
    return Outcome(False, status=refused.status, code=refused.code, detail=refused.detail)


def _error_of(outcome: Outcome) -> ExecutionError:
    return ExecutionError(code=outcome.code, detail=outcome.detail, status=outcome.status)


def _problem_of(outcome: Outcome, execution_id: str) -> errors.ProblemError:
    problem: errors.ProblemError
    if outcome.code == "DEPENDENCY_UNAVAILABLE":
        problem = errors.DependencyUnavailable(outcome.detail)
    elif outcome.code == "COMMAND_TIMEOUT":
        problem = errors.CommandTimeout(outcome.detail)
    elif outcome.code == "RESULT_TOO_LARGE":
        problem = errors.ResultTooLarge(outcome.detail)
    else:
        problem = errors.CommandFailed(outcome.detail)
        problem.status = outcome.status
        problem.code = outcome.code
    problem.extensions["execution_id"] = execution_id
    problem.headers.update(outcome.headers)
    return problem
