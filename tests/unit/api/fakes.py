"""In-memory stand-ins for every store the api function reaches through `routes.services.services()`.

The services themselves are the real ones where they only need a store (executions, idempotency, the rate
limiter); state keys and API keys are faked one level up, at the service the routers call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer, DataRecord
from pydantic import BaseModel, ConfigDict

from cmdgate.audit import AuditLog, AuditStamp
from cmdgate.auth.apikeys import ApiKeyRecord
from cmdgate.callbacks import CreatedSecret
from cmdgate.commands import CommandContext, CommandRegistry, command
from cmdgate.config import Settings
from cmdgate.executions import ExecutionService, MessageQueue
from cmdgate.executions.model import Execution
from cmdgate.health import Check
from cmdgate.idempotency import IdempotentRequests
from cmdgate.ratelimit import RateLimitPolicy, TokenBucket
from cmdgate.ratelimit.requests import RequestRateLimiter
from cmdgate.ratelimit.store.memory import InMemoryRateLimitStore
from cmdgate.state.errors import PreconditionFailed, PreconditionRequired, StateNotFound
from cmdgate.state.model import Register, VersionEntry, digest_of, validate_key
from cmdgate.state.recovery import RecoveryReport
from cmdgate.state.service import Preconditions
from cmdgate.webhooks.config import parse_webhook_sources
from cmdgate.webhooks.deliveries import RecordedDelivery
from cmdgate.webhooks.receiver import WebhookReceiver

NOW = "2026-12-01T10:00:00+0000"


class MemoryExecutionStore:
    """The ExecutionStore calls the service makes on the api's paths."""

    def __init__(self) -> None:
        self.items: dict[str, Execution] = {}

    def create(self, execution: Execution) -> None:
        assert execution.execution_id not in self.items
        self.items[execution.execution_id] = execution

    def get(self, execution_id: str) -> Execution | None:
        return self.items.get(execution_id)

    def dead_letters(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Execution], dict[str, Any] | None]:
        dead = sorted((e for e in self.items.values() if e.status == "dead_lettered"), key=lambda e: e.created_at)
        return dead[:limit], None

    def redrive(self, execution_id: str) -> Execution | None:
        found = self.items.get(execution_id)
        if found is None or found.status != "dead_lettered":
            return None
        self.items[execution_id] = found.model_copy(update={"status": "queued"})
        return self.items[execution_id]

    def cancel(self, execution_id: str) -> Execution | None:
        found = self.items.get(execution_id)
        if found is not None and found.status in ("queued", "running"):
            moved = "cancelled" if found.status == "queued" else "running"
            self.items[execution_id] = found.model_copy(update={"status": moved, "cancel_requested": True})
        return self.items.get(execution_id)

    def undo_redrive(self, execution_id: str) -> None:
        self.items[execution_id] = self.items[execution_id].model_copy(update={"status": "dead_lettered"})


class RecordingQueue(MessageQueue):
    def __init__(self) -> None:
        super().__init__(sqs=None, queue_url="memory://queue")
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], delay_s: int = 0) -> str:
        self.sent.append(message)
        return f"msg-{len(self.sent)}"


class MemoryIdempotency(BasePersistenceLayer):
    """Powertools' persistence contract on a dict (conditional put like DynamoDB's)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, DataRecord] = {}

    def _get_record(self, idempotency_key: str) -> DataRecord:
        if idempotency_key not in self.records:
            raise IdempotencyItemNotFoundError
        return self.records[idempotency_key]

    def _put_record(self, data_record: DataRecord) -> None:
        old = self.records.get(data_record.idempotency_key)
        if old is not None and not old.is_expired:
            raise IdempotencyItemAlreadyExistsError(old_data_record=old)
        self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        self.records.pop(data_record.idempotency_key, None)


class MemoryStates:
    """The StateService calls the state router makes, on a dict of versions (preconditions as the service has)."""

    def __init__(self) -> None:
        self.versions: dict[str, list[Register]] = {}
        self.remaining: list[Callable[[], float] | None] = []

    def _current(self, key: str) -> Register | None:
        versions = self.versions.get(validate_key(key), [])
        return versions[-1] if versions and not versions[-1].deleted else None

    def _check(self, current: Register | None, conditions: Preconditions, *, create_ok: bool) -> None:
        if not (conditions.if_match is not None or conditions.if_match_any or conditions.if_none_match_any):
            raise PreconditionRequired("Send If-Match.")
        if conditions.if_none_match_any and current is not None:
            raise PreconditionFailed("The key exists.")
        if (conditions.if_match is not None or conditions.if_match_any) and current is None:
            raise PreconditionFailed("No such key.")
        if conditions.if_match is not None and current is not None and current.version != conditions.if_match:
            raise PreconditionFailed("Another version is current.")
        if not create_ok and current is None:
            raise StateNotFound("No such key.")

    def _write(self, key: str, value: Any, *, deleted: bool = False) -> Register:
        versions = self.versions.setdefault(key, [])
        register = Register(
            key=key,
            version=len(versions) + 1,
            value_json=json.dumps(value),
            digest=digest_of(value),
            updated_at=NOW,
            deleted=deleted,
        )
        versions.append(register)
        return register

    def get(self, key: str) -> Register:
        current = self._current(key)
        if current is None:
            raise StateNotFound("No such key.")
        return current

    def get_version(self, key: str, version: int) -> VersionEntry:
        for r in self.versions.get(key, []):
            if r.version == version:
                return VersionEntry(key, r.version, r.value_json, r.digest, r.updated_at, r.deleted)
        raise StateNotFound("No such version.")

    def history(self, key: str, limit: int, start: dict[str, Any] | None) -> tuple[list[VersionEntry], None]:
        entries = [self.get_version(key, r.version) for r in reversed(self.versions.get(key, []))]
        return entries[:limit], None

    def put(self, key: str, value: Any, conditions: Preconditions) -> tuple[Register, bool]:
        current = self._current(key)
        self._check(current, conditions, create_ok=True)
        return self._write(key, value), current is None

    def patch(self, key: str, patch: Any, conditions: Preconditions) -> Register:
        current = self._current(key)
        self._check(
            current, Preconditions(if_match_any=True) if conditions == Preconditions() else conditions, create_ok=False
        )
        assert current is not None
        return self._write(key, {**current.value, **patch})

    def delete(self, key: str, conditions: Preconditions) -> Register:
        current = self._current(key)
        self._check(current, conditions, create_ok=False)
        return self._write(key, None, deleted=True)

    def restore(self, key: str, version: int) -> Register:
        return self._write(key, self.get_version(key, version).value)


class MemoryKeys:
    """The ApiKeyStore calls the admin routes make."""

    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    def create(
        self, name: str, permissions: list[str], rate_limit: dict[str, int], *, expires_at: int | None = None
    ) -> tuple[str, ApiKeyRecord]:
        key_id = f"k{len(self.records) + 1}"
        record = ApiKeyRecord(key_id, f"hash-{key_id}", name, tuple(permissions), rate_limit, expires_at=expires_at)
        self.records[key_id] = record
        return f"cg_secret_{key_id}", record

    def list_page(self, limit: int, start_key: dict[str, Any] | None) -> tuple[list[ApiKeyRecord], None]:
        return list(self.records.values())[:limit], None

    def revoke(self, key_id: str) -> bool:
        if key_id not in self.records:
            return False
        del self.records[key_id]
        return True


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = "hi"


def registry() -> CommandRegistry:
    commands = CommandRegistry()

    @command("echo", description="Echo.", params=EchoParams, registry=commands)
    def echo(params: EchoParams, context: CommandContext) -> dict[str, Any]:
        return {"message": params.message}

    @command("transfer", description="Needs a key.", idempotency="required", registry=commands)
    def transfer(params: BaseModel, context: CommandContext) -> dict[str, Any]:
        return {"moved": True}

    return commands


class MemorySigningSecrets:
    """Which principals have a callback signing secret (the routes ask nothing more)."""

    def __init__(self) -> None:
        self.principals: set[str] = set()

    def has_secret(self, principal_id: str) -> bool:
        return principal_id in self.principals

    def rotate(self, principal_id: str, grace_s: int) -> CreatedSecret:
        previous = 1_700_000_000 + grace_s if principal_id in self.principals and grace_s else None
        self.principals.add(principal_id)
        return CreatedSecret(principal_id, "s1", "whsec_" + "A" * 44, 1_700_000_000, previous)


# GitHub's documented example secret; `push` runs echo with the payload's message, `issues` a command
# the source may not run, and every other event is unmapped.
WEBHOOK_SECRET = "It's a Secret to Everybody"
WEBHOOK_SOURCES = parse_webhook_sources(
    json.dumps(
        {
            "github": {
                "permissions": ["commands.run:echo"],
                "rate_limit": {"quota": 5, "window_s": 60},
                "events": {
                    "push": {"command": "echo", "params": {"message": "{{/payload/message}}"}},
                    "issues": {"command": "transfer"},
                },
            }
        }
    )
)


class MemoryDeliveryLog:
    """DeliveryLog on a dict: the first record of a delivery wins."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], RecordedDelivery] = {}

    def record(self, delivery: RecordedDelivery, origin: Any) -> RecordedDelivery:
        return self.records.setdefault((delivery.source, delivery.delivery_id), delivery)


class MemoryAuditTable:
    """The control table as the audit log writes it: conditional puts, kept in order."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_item(self, Item: dict[str, Any], ConditionExpression: str = "") -> None:
        assert all(item["pk"] != Item["pk"] for item in self.items)
        self.items.append(Item)


class MemoryAuditTrail:
    """The trail's reader as the route calls it: the admin items recorded so far, and the arguments asked for."""

    def __init__(self, table: MemoryAuditTable) -> None:
        self.table = table
        self.calls: list[dict[str, Any]] = []

    def page(self, **kwargs: Any) -> tuple[list[dict[str, Any]], str | None]:
        from cmdgate.audit.trail import admin_entry

        self.calls.append(kwargs)
        entries = [admin_entry(item) for item in self.table.items]
        return [e for e in entries if kwargs.get("action") in (None, e["action"])], None


class RecordingRecovery:
    """`StateRecovery` stand-in: records each call's arguments and answers one gist further along."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def run(self, **kwargs: Any) -> RecoveryReport:
        self.calls.append(kwargs)
        left = list(kwargs["gists"] if kwargs["gists"] is not None else ["g1", "g2"])[1:]
        return RecoveryReport(gists=left, skip=0, counts={"keys_recovered": 1})


class FakeServices:
    """What `routes.services.services()` hands the routers, all in memory."""

    def __init__(self, quota: int = 100) -> None:
        self.settings = Settings()
        self.execution_store = MemoryExecutionStore()
        self.queue = RecordingQueue()
        self.executions = ExecutionService(self.execution_store, self.queue, None, registry())  # type: ignore[arg-type]
        self.idempotency = MemoryIdempotency()
        self.idempotent_requests = IdempotentRequests(self.idempotency)
        self.rate_limiter = RequestRateLimiter(TokenBucket(InMemoryRateLimitStore()), None, RateLimitPolicy(quota, 60))
        self.states = MemoryStates()
        self.api_keys: Any = MemoryKeys()
        self.checks = [Check("memory", lambda: None)]
        self.signing_secrets: Any = MemorySigningSecrets()
        self.webhook_secrets: dict[str, Any] = {"github": [WEBHOOK_SECRET]}
        self.deliveries = MemoryDeliveryLog()
        self.webhooks = WebhookReceiver(
            WEBHOOK_SOURCES,
            lambda: self.webhook_secrets,
            self.executions,
            self.rate_limiter,
            self.deliveries,  # type: ignore[arg-type]
        )
        self.audit_table = MemoryAuditTable()
        self.audit_log = AuditLog(self.audit_table, 400 * 86400)
        self.audit_trail: Any = MemoryAuditTrail(self.audit_table)
        self.audit_stamps: list[AuditStamp | None] = []
        self.state_recovery: Any = RecordingRecovery()

    def state_service(self, remaining_s: Callable[[], float] | None = None, audit: AuditStamp | None = None) -> Any:
        self.states.remaining.append(remaining_s)
        self.audit_stamps.append(audit)
        return self.states

    def health_checks(self) -> list[Check]:
        return self.checks
