"""Submitting, running and reading executions: the api function's and the worker's logic."""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ValidationError

from cmdgate import errors
from cmdgate.auth import Principal
from cmdgate.authz import authorize, authorize_command, may, may_run
from cmdgate.commands import CommandContext, CommandRegistry, CommandServices, CommandSpec, NoServices
from cmdgate.executions.model import Execution, ExecutionError, Status, utc_now_iso
from cmdgate.executions.queue import MessageQueue, PoisonMessage, attempt_limit, parse_execution_message
from cmdgate.executions.runner import Outcome, run_attempt
from cmdgate.executions.secrets import ParamSecrets, redacted
from cmdgate.executions.store import ExecutionStore
from cmdgate.http import parse_json
from cmdgate.ratelimit.policy import RateLimitPolicy

logger = Logger(child=True)
# An attempt's lease outlives the command's timeout by this much before another attempt may take over.
ATTEMPT_LEASE_MARGIN_S = 10.0


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
        clock: Callable[[], float] = time.time,
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
        self._clock = clock

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

    def submit(self, principal: Principal, name: str, body: str | None, prefer_async: bool) -> Submission:
        """Validate, then run now (sync) or queue (async)."""
        return self.start(principal, self.prepare(principal, name, body, prefer_async))

    def prepare(
        self, principal: Principal, name: str, body: str | None, prefer_async: bool, callback_url: str | None = None
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
            spec, params, raw, run_async, preference_applied=prefer_async and run_async, callback_url=callback_url
        )

    def start(self, principal: Principal, prepared: PreparedRun) -> Submission:
        """Run now (sync) or queue (async); a command's own failure is an answer, not an exception."""
        spec, params, run_async = prepared.spec, prepared.params, prepared.run_async
        execution_id = uuid.uuid4().hex
        # Secret params: sealed for the worker (async), redacted where nobody reads them again (sync).
        stored, sealed = self._secrets.seal(execution_id, params) if run_async else (redacted(params), None)
        execution = Execution(
            execution_id=execution_id,
            command=spec.name,
            principal_id=principal.principal_id,
            mode="async" if run_async else "sync",
            status="queued",
            params=stored,
            secrets=sealed,
            created_at=utc_now_iso(),
            expires_at=int(self._clock()) + self._execution_ttl_s,
            permissions=principal.permissions,
            callback_url=prepared.callback_url,
        )
        if run_async:
            return self._enqueue(execution, preference_applied=prepared.preference_applied)
        return self._run_sync(spec, execution, params)

    def get(self, principal: Principal, execution_id: str) -> Execution:
        """An execution its creator (or admin) may see; anyone else gets 404."""
        execution = self._store.get(execution_id) if _looks_like_id(execution_id) else None
        if execution is None or not may(principal, "executions.read", execution.principal_id):
            raise errors.ExecutionNotFound(f"No execution {execution_id!r}.")
        return execution

    def process_message(self, body: str, receive_count: int) -> None:
        """Worker: run one queued execution; raise to have SQS redeliver it."""
        execution_id = parse_execution_message(body)
        record = self._store.get(execution_id)
        if record is None:
            raise PoisonMessage(f"execution {execution_id} does not exist")
        spec = self._registry.get(record.command)
        if spec is None:
            raise PoisonMessage(f"execution {execution_id} names unknown command {record.command!r}")
        running = self._store.begin_attempt(execution_id, spec.timeout_s + ATTEMPT_LEASE_MARGIN_S, self._clock())
        if running is None:
            current = self._store.get(execution_id)
            if current is not None and current.status == "running":
                # A duplicate delivery while another attempt holds the lease: come back later.
                raise AttemptInProgress(f"execution {execution_id} is being run by another attempt")
            logger.info("execution already finished; message acknowledged", extra={"execution_id": execution_id})
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
            self._retry_or_dead_letter(running, SECRETS_UNAVAILABLE, body, receive_count)
            return
        try:
            # Again, with the permissions the run was authorized with: an async run can do no more
            # than a sync one (and a record without them - written before they were kept - nothing).
            authorize_command(Principal(running.principal_id, running.permissions), spec, params)
        except errors.ProblemError as refused:
            self._finish(running, "failed", _refusal_outcome(refused))
            return
        outcome = self._attempt(spec, running, params)
        if outcome.ok:
            self._finish(running, "succeeded", outcome)
            return
        if not outcome.retryable:
            self._finish(running, "failed", outcome)
            return
        self._retry_or_dead_letter(running, outcome, body, receive_count)

    def _retry_or_dead_letter(self, running: Execution, outcome: Outcome, body: str, receive_count: int) -> None:
        """A retryable failure: dead-lettered when no attempt is left, else queued again and SQS redelivers."""
        execution_id = running.execution_id
        limit = attempt_limit(body)
        if limit is not None and running.attempts >= limit:
            # A redrive gives exactly one new attempt: dead-lettered again, and this message is done.
            self._finish(running, "dead_lettered", outcome)
            return
        if receive_count >= self._max_receive_count:
            self._finish(running, "dead_lettered", outcome)
        else:
            self._store.finish(execution_id, running.attempts, "queued", error=_error_of(outcome))
        raise RetryableFailure(f"attempt {running.attempts} of {execution_id} failed: {outcome.code}")

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
            )
            try:
                self._store.create(existing)
            except Exception as exc:
                if not _is_condition_failure(exc):
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

    def _attempt(self, spec: CommandSpec, execution: Execution, params: Any) -> Outcome:
        context = CommandContext(
            execution_id=execution.execution_id,
            principal_id=execution.principal_id,
            attempt=execution.attempts,
            deadline=time.monotonic() + spec.timeout_s,
            services=self._services,
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
    """Another attempt holds the execution's lease; the message returns after its visibility timeout."""


def parse_json_object(body: str | None) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is `{}`)."""
    if body is None or not body.strip():
        return {}
    value = parse_json(body)
    if not isinstance(value, dict):
        raise errors.InvalidJson("The request body must be a JSON object.")
    return value


def follow_up_id(parent_id: str, slot: str, name: str) -> str:
    """The id of a parent's follow-up (`slot` says which one): the same for every delivery of the parent's event."""
    return hashlib.sha256(f"follow-up\n{parent_id}\n{slot}\n{name}".encode()).hexdigest()[:32]


def _is_condition_failure(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _looks_like_id(execution_id: str) -> bool:
    return 0 < len(execution_id) <= 64 and execution_id.isalnum()


STALE_PARAMS = Outcome(
    False, status=422, code="VALIDATION_FAILED", detail="The stored params no longer fit the command's params model."
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
