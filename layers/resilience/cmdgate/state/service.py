"""The state API's logic: conditional reads and writes, optimistic merge patches, history,
restore, and the hand-off to gist sync (write-behind through SQS FIFO, or write-through)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from cmdgate.audit.stamp import AuditStamp
from cmdgate.errors import ProblemError
from cmdgate.retry import full_jitter
from cmdgate.state.errors import (
    PreconditionFailed,
    PreconditionRequired,
    StateContention,
    StateNotFound,
    StateTooLarge,
    VersionNotRetained,
)
from cmdgate.state.merge_patch import apply_merge_patch
from cmdgate.state.model import Register, VersionEntry, canonical, digest_of, validate_key
from cmdgate.state.store import EffectApplied, KeyLeased, StateStore, WriteConflict

logger = Logger(child=True)
MAX_VALUE_BYTES = 256 * 1024
# Retries of a lost optimistic write: full jitter from 20 ms up to 0.5 s, and time kept to answer.
CONTENTION_BASE_S = 0.02
CONTENTION_CAP_S = 0.5
CONTENTION_MARGIN_S = 1.0


class SyncScheduler(Protocol):
    """Gets a written version to the gist: queues it (write-behind) or writes it now (write-through)."""

    def schedule(self, key: str, version: int) -> None: ...


class EventSink(Protocol):
    """Where `state.changed` events go (the events queue)."""

    def send(self, message: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class Preconditions:
    """The conditional headers of a request, parsed."""

    if_match: int | None = None  # `If-Match: "<version>"`
    if_match_any: bool = False  # `If-Match: *`
    if_none_match_any: bool = False  # `If-None-Match: *`


class FifoSyncQueue:
    """Write-behind: one message per version, grouped by key and deduplicated on key + version."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def schedule(self, key: str, version: int, *, repair: str | None = None) -> None:
        """Queue the sync of `version` of `key`; `repair` (a healer pass) makes it a message of its own,
        not a duplicate of the write's (a rewrite of a file that failed its check, within the window)."""
        name = f"{key}#{version}" if repair is None else f"{key}#{version}#repair#{repair}"
        dedup = hashlib.sha256(name.encode()).hexdigest()
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps({"key": key, "version": version}),
            MessageGroupId=hashlib.sha256(key.encode()).hexdigest()[:64],
            MessageDeduplicationId=dedup,
        )


class StateService:
    """Versioned JSON values; DynamoDB is the source of truth, each key's gist its backup."""

    def __init__(
        self,
        store: StateStore,
        sync: SyncScheduler,
        events: EventSink | None = None,
        *,
        max_value_bytes: int = MAX_VALUE_BYTES,
        contention_wait_s: float = 10.0,
        remaining_s: Callable[[], float] | None = None,
        archive: Callable[[], Any] | None = None,
        audit: AuditStamp | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sync = sync
        self._events = events
        self._max_value_bytes = max_value_bytes
        self._contention_wait_s = contention_wait_s
        self._remaining_s = remaining_s
        self._archive = archive  # GistSync, built only when a version must be read back from the gist
        self._audit = audit  # the request's stamp: its writes' log entries are their audit entries
        self._sleep = sleep
        self._rand = rand
        self._clock = clock  # wall clock, as leases are stamped

    def get(self, key: str) -> Register:
        """The current value of a key (404 if unknown or deleted)."""
        register = self._store.register(validate_key(key))
        if register is None or register.deleted:
            raise StateNotFound(f"No state {key!r}.")
        return register

    def get_version(self, key: str, version: int) -> VersionEntry:
        """A past version, while it is retained."""
        entry = self._store.version(validate_key(key), version)
        if entry is None:
            entry = self._from_gist(key, version)
        if entry is None or entry.deleted:
            raise VersionNotRetained(f"Version {version} of {key!r} is not retained.")
        return entry

    def _from_gist(self, key: str, version: int) -> VersionEntry | None:
        """Beyond DynamoDB's log, the gist history: only versions that reached the gist are there."""
        register = self._store.register(key)
        if self._archive is None or register is None or register.gist_id is None or version > register.version:
            return None
        found = self._archive().find_version(register, version)
        if found is None:
            return None
        value, deleted = found
        value_json = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return VersionEntry(key, version, value_json, digest_of(value), "", deleted=deleted)

    def history(
        self, key: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[VersionEntry], dict[str, Any] | None]:
        """Retained versions, newest first."""
        validate_key(key)
        if self._store.register(key) is None:
            raise StateNotFound(f"No state {key!r}.")
        return self._store.history(key, limit, start)

    def put(self, key: str, value: Any, conditions: Preconditions) -> tuple[Register, bool]:
        """Create (If-None-Match: *) or replace (If-Match); returns the register and whether it was created."""
        validate_key(key)
        value_json = self._checked(value)
        if not (conditions.if_none_match_any or conditions.if_match is not None or conditions.if_match_any):
            raise PreconditionRequired('PUT needs If-None-Match: * (create) or If-Match: "<version>" (replace).')
        read = self._store.register(key)
        exists = read is not None and not read.deleted
        if conditions.if_none_match_any and exists:
            raise PreconditionFailed(f"State {key!r} already exists.")
        if (conditions.if_match is not None or conditions.if_match_any) and not exists:
            raise PreconditionFailed(f"State {key!r} does not exist.")
        if conditions.if_match is not None and read is not None and read.version != conditions.if_match:
            raise PreconditionFailed(f"State {key!r} is at version {read.version}.")
        return self._commit(key, read, value_json, value, action="state.written"), not exists

    def ensure(self, key: str, initial: Any) -> None:
        """Create the key with `initial` unless it exists (losing a creation race is fine)."""
        read = self._store.register(validate_key(key))
        if read is not None and not read.deleted:
            return
        with contextlib.suppress(PreconditionFailed):  # another writer created it first
            self._commit(key, read, self._checked(initial), initial)

    def patch(self, key: str, patch: Any, conditions: Preconditions, *, effect: str | None = None) -> Register:
        """Apply an RFC 7396 merge patch optimistically; concurrent patches never lose an update."""
        validate_key(key)
        return self.update(key, lambda current: apply_merge_patch(current, patch), conditions, effect=effect)

    def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        conditions: Preconditions | None = None,
        *,
        effect: str | None = None,
    ) -> Register:
        """Read, change, commit on the version read (and no other holder's lease); retried with full jitter.

        A lost race re-reads and tries again after a full-jitter pause, for as long as the request
        has time (and at most `contention_wait_s`); then 409 STATE_CONTENTION with Retry-After. No
        lease is taken, so an uncontended write is one read and one transaction. With `effect`, a
        change already applied under that id is not applied again: the current register is returned.
        """
        validate_key(key)
        deadline = time.monotonic() + self._contention_budget_s()
        known: WriteConflict | None = None  # the last lost race, with the register it found
        for attempt in itertools.count():
            read = known.current if known is not None and known.found else self._store.register(key)
            if read is None or read.deleted:
                raise StateNotFound(f"No state {key!r}.")
            if conditions is not None and conditions.if_match is not None and read.version != conditions.if_match:
                raise PreconditionFailed(f"State {key!r} is at version {read.version}.")
            value = change(read.value)
            try:
                register = self._store.commit(
                    key,
                    read,
                    self._checked(value, status_422=True),
                    digest_of(value),
                    effect=effect,
                    audit=self._stamp("state.written"),
                )
            except EffectApplied:
                logger.info("state change already applied under its effect id", extra={"key": key})
                current = self._store.register(key)
                if current is None:
                    raise StateNotFound(f"No state {key!r}.") from None
                return current
            except WriteConflict as conflict:
                known = conflict
                pause = full_jitter(attempt, CONTENTION_BASE_S, CONTENTION_CAP_S, self._rand)
                if isinstance(conflict, KeyLeased) and conflict.lease_until is not None:
                    pause = max(pause, conflict.lease_until - self._clock())
                if time.monotonic() + pause > deadline:
                    raise StateContention(
                        f"State {key!r} is being written by others; try again.",
                        headers={"Retry-After": str(max(1, math.ceil(pause)))},
                    ) from None
                self._sleep(pause)
                continue
            self._after_write(register)
            return register
        raise AssertionError("unreachable")  # itertools.count() never ends

    def _contention_budget_s(self) -> float:
        budget = self._contention_wait_s
        if self._remaining_s is not None:
            budget = min(budget, self._remaining_s() - CONTENTION_MARGIN_S)
        return max(0.0, budget)

    def delete(self, key: str, conditions: Preconditions) -> Register:
        """Delete (If-Match required); the version number keeps growing and the gist keeps the history."""
        validate_key(key)
        if conditions.if_match is None and not conditions.if_match_any:
            raise PreconditionRequired('DELETE needs If-Match: "<version>".')
        read = self._store.register(key)
        if read is None or read.deleted:
            raise PreconditionFailed(f"State {key!r} does not exist.")
        if conditions.if_match is not None and read.version != conditions.if_match:
            raise PreconditionFailed(f"State {key!r} is at version {read.version}.")
        return self._commit(key, read, "null", None, deleted=True, action="state.deleted")

    def restore(self, key: str, version: int) -> Register:
        """Write version `version`'s value as a new version."""
        entry = self.get_version(key, version)
        read = self._store.register(key)
        return self._commit(key, read, entry.value_json, entry.value, action="state.restored")

    def _stamp(self, action: str) -> AuditStamp | None:
        return self._audit.with_action(action) if self._audit is not None else None

    def _checked(self, value: Any, *, status_422: bool = False) -> str:
        size = len(canonical(value))
        if size > self._max_value_bytes:
            detail = f"The value is {size} bytes; at most {self._max_value_bytes} are allowed."
            if status_422:
                raise StateTooLarge(detail)
            from cmdgate.errors import PayloadTooLarge

            raise PayloadTooLarge(detail)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def _commit(
        self,
        key: str,
        read: Register | None,
        value_json: str,
        value: Any,
        *,
        deleted: bool = False,
        action: str = "state.written",
    ) -> Register:
        register = self._write(key, read, value_json, value, deleted=deleted, action=action)
        self._after_write(register)
        return register

    def _write(
        self,
        key: str,
        read: Register | None,
        value_json: str,
        value: Any,
        *,
        deleted: bool = False,
        action: str = "state.written",
    ) -> Register:
        try:
            return self._store.commit(
                key, read, value_json, digest_of(value), deleted=deleted, audit=self._stamp(action)
            )
        except KeyLeased as leased:
            wait = (leased.lease_until - self._clock()) if leased.lease_until is not None else 1.0
            raise StateContention(
                f"State {key!r} is leased by another holder.", headers={"Retry-After": str(max(1, math.ceil(wait)))}
            ) from None
        except WriteConflict:
            raise PreconditionFailed(f"State {key!r} changed while it was being written.") from None

    def _after_write(self, register: Register) -> None:
        if self._events is not None:
            try:
                self._events.send(
                    {
                        "type": "state.changed",
                        "key": register.key,
                        "version": register.version,
                        "deleted": register.deleted,
                        "at": time.time(),
                    }
                )
            except Exception:
                logger.exception("state.changed not published", extra={"key": register.key})
        try:
            self._sync.schedule(register.key, register.version)
        except ProblemError:
            raise  # write-through: the caller must learn that the gist is behind
        except Exception:
            # The write is committed; the key syncs with its next write (no re-sync of lagging keys yet).
            logger.exception("gist sync not scheduled", extra={"key": register.key, "version": register.version})
