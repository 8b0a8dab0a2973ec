"""Execution records and their status machine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from cmdgate.audit.stamp import STAMP_FIELDS

Status = Literal["queued", "running", "succeeded", "failed", "dead_lettered", "cancelled"]
# Status moves (each one a conditional write in ExecutionStore): queued -> running | cancelled;
# running -> succeeded | failed | dead_lettered | cancelled | queued (a transient failure, retried
# after a backoff); dead_lettered -> queued (an admin redrive). succeeded, failed and cancelled are final.
AUDIT_FIELDS = (*STAMP_FIELDS, "idempotency_key")
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "dead_lettered", "cancelled"})


def utc_now_iso() -> str:
    """Current time as an RFC 3339 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_iso(epoch_s: float) -> str:
    """An epoch time as an RFC 3339 UTC timestamp with milliseconds."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ExecutionError(BaseModel):
    """Why an execution failed; safe to show the caller."""

    code: str
    detail: str
    status: int = 500


class AttemptError(BaseModel):
    """How one attempt failed (one per failed attempt: bounded by MaxReceiveCount and the redrives)."""

    attempt: int
    code: str
    detail: str
    at: str


class CallbackState(BaseModel):
    """The delivery of an execution's completion callback."""

    status: Literal["pending", "delivered", "abandoned"] = "pending"
    attempts: int = 0
    last_error: str | None = None  # e.g. "HTTP 500", "timeout": never the receiver's body
    delivered_at: str | None = None


class Execution(BaseModel):
    """One run of a command."""

    execution_id: str
    command: str
    principal_id: str
    mode: Literal["sync", "async"]
    status: Status
    params: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    result: Any = None
    error: ExecutionError | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    expires_at: int = 0
    lease_until: int | None = None  # epoch seconds; while in the future, the running attempt owns the record
    # The principal's permission patterns when the run was authorized: the worker checks them again.
    permissions: tuple[str, ...] = ()
    # The KMS envelope of the secret params of an async run (cmdgate.executions.secrets); `params`
    # holds a placeholder where each one was. Never part of the public view.
    secrets: dict[str, Any] | None = None
    # Epoch seconds when a queued execution's message is due (at once when created; after the backoff
    # of a retry). A `queued` record whose message is long overdue lost its message (the healer).
    next_attempt_at: int | None = None
    attempt_errors: list[AttemptError] = Field(default_factory=list)
    cancel_requested: bool = False
    retry_safe: bool = False  # the command's declaration when the run was queued (the healer reads it)
    # Completion callback (cmdgate.callbacks): where the end of the run is POSTed, and how that went.
    callback_url: str | None = None
    callback: CallbackState | None = None
    # A follow-up's parent execution and its place in the chain (cmdgate.followups).
    parent_execution_id: str | None = None
    chain_depth: int = 0
    # Who asked for the run, from where (cmdgate.audit.stamp): this record is the run's audit entry.
    audit: dict[str, str] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the execution reached a final status (a dead-lettered one may still be redriven)."""
        return self.status in FINAL_STATUSES

    def public_view(self) -> dict[str, Any]:
        """The `GET /v1/executions/{id}` representation."""
        view: dict[str, Any] = {
            "execution_id": self.execution_id,
            "command": self.command,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if self.status == "succeeded":
            view["result"] = self.result
        elif self.error is not None:
            view["error"] = self.error.model_dump()
        if self.status == "queued" and self.next_attempt_at is not None and self.attempts:
            view["next_attempt_at"] = epoch_iso(self.next_attempt_at)
        if self.attempt_errors:
            view["attempt_errors"] = [e.model_dump() for e in self.attempt_errors]
        if self.cancel_requested:
            view["cancel_requested"] = True
        if self.callback_url is not None:
            view["callback"] = (self.callback or CallbackState()).model_dump()
        if self.parent_execution_id is not None:
            view["parent_execution_id"] = self.parent_execution_id
            view["chain_depth"] = self.chain_depth
        return view

    def to_item(self) -> dict[str, Any]:
        """DynamoDB item; params and result travel as JSON text so floats and nesting survive exactly."""
        item: dict[str, Any] = {
            "execution_id": self.execution_id,
            "command": self.command,
            "principal_id": self.principal_id,
            "mode": self.mode,
            "status": self.status,
            "params_json": json.dumps(self.params, separators=(",", ":")),
            "attempts": self.attempts,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "permissions": list(self.permissions),
        }
        if self.next_attempt_at is not None:
            item["next_attempt_at"] = self.next_attempt_at
        if self.attempt_errors:
            item["attempt_errors"] = [e.model_dump() for e in self.attempt_errors]
        if self.cancel_requested:
            item["cancel_requested"] = True
        # Always written: a record without it predates the flag (the healer then asks the registry).
        item["retry_safe"] = self.retry_safe
        if self.secrets is not None:
            item["secrets_json"] = json.dumps(self.secrets, separators=(",", ":"))
        if self.started_at:
            item["started_at"] = self.started_at
        if self.lease_until is not None:
            item["lease_until"] = self.lease_until
        if self.finished_at:
            item["finished_at"] = self.finished_at
        if self.status == "succeeded":
            item["result_json"] = json.dumps(self.result, separators=(",", ":"))
        if self.error is not None:
            item["error"] = self.error.model_dump()
        if self.callback_url is not None:
            item["callback_url"] = self.callback_url
        if self.parent_execution_id is not None:
            item["parent_execution_id"] = self.parent_execution_id
        if self.chain_depth:
            item["chain_depth"] = self.chain_depth
        item.update(self.audit)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Execution:
        """Parse a DynamoDB item."""
        result_json = item.get("result_json")
        secrets_json = item.get("secrets_json")
        error = item.get("error")
        return cls(
            execution_id=item["execution_id"],
            command=item["command"],
            principal_id=item["principal_id"],
            mode=item.get("mode", "async"),
            status=item["status"],
            params=json.loads(item.get("params_json") or "{}"),
            attempts=int(item.get("attempts", 0)),
            result=json.loads(result_json) if result_json is not None else None,
            error=ExecutionError(
                code=str(error["code"]), detail=str(error["detail"]), status=int(error.get("status", 500))
            )
            if error
            else None,
            created_at=item["created_at"],
            started_at=item.get("started_at"),
            finished_at=item.get("finished_at"),
            expires_at=int(item.get("expires_at", 0)),
            lease_until=int(item["lease_until"]) if item.get("lease_until") is not None else None,
            permissions=tuple(str(p) for p in item.get("permissions") or ()),
            secrets=json.loads(secrets_json) if secrets_json else None,
            next_attempt_at=int(item["next_attempt_at"]) if item.get("next_attempt_at") is not None else None,
            attempt_errors=[
                AttemptError(attempt=int(e["attempt"]), code=str(e["code"]), detail=str(e["detail"]), at=str(e["at"]))
                for e in item.get("attempt_errors") or ()
            ],
            cancel_requested=bool(item.get("cancel_requested", False)),
            retry_safe=bool(item.get("retry_safe", False)),
            callback_url=item.get("callback_url"),
            callback=CallbackState(
                status=item["callback_status"],
                attempts=int(item.get("callback_attempts", 0)),
                last_error=item.get("callback_last_error"),
                delivered_at=item.get("callback_delivered_at"),
            )
            if item.get("callback_status")
            else None,
            parent_execution_id=item.get("parent_execution_id"),
            chain_depth=int(item.get("chain_depth", 0)),
            audit={name: str(item[name]) for name in AUDIT_FIELDS if name in item},
        )
