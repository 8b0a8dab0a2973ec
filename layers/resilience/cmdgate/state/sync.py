"""Gist sync: each key's newest version written to its own secret gist, within a write budget.

Versions written in between are coalesced (a sync always writes the register's newest version);
an outage only delays sync - the register keeps every write, `synced_version` lags, and the
message comes back until the gist answers again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from cmdgate import errors
from cmdgate.crypto import Codec
from cmdgate.gist import GistClient
from cmdgate.locks import LockLost, LockManager
from cmdgate.ratelimit import RateLimitPolicy, TokenBucket
from cmdgate.state.model import digest_of
from cmdgate.state.store import StateStore

logger = Logger(child=True)
# A key's sync lease outlasts one gist write with its retries; waiters give up in time to answer.
SYNC_LEASE_S = 60.0
SYNC_LOCK_WAIT_S = 10.0
STATE_FILE = "state.json"


class GistBudgetExhausted(errors.ProblemError):
    """The write budget for the GitHub token is used up; sync waits (the message returns later)."""

    status, code, title = 503, "GIST_BUDGET_EXHAUSTED", "Gist write budget exhausted"


@dataclass(frozen=True)
class SyncOutcome:
    """What a sync did for one key."""

    key: str
    written_version: int | None  # None: nothing to write (unknown key, or already synced)
    revision: str | None = None


class GistWriteBudget:
    """GitHub's secondary limits as token buckets shared by every sync instance (80/min, 500/h by default).

    The >= 1 s spacing between writes is kept by the Gist client of the single sync instance
    (reserved concurrency 1).
    """

    def __init__(self, bucket: TokenBucket, token_id: str, policies: tuple[RateLimitPolicy, ...]) -> None:
        self._bucket = bucket
        self._token_id = token_id
        self._policies = policies

    def take(self) -> None:
        """Spend one write, or raise GistBudgetExhausted with the wait in Retry-After."""
        # Every limit in one item and one conditional write: a refusal by one spends nothing of the others.
        limits = [(f"{policy.window_s}s", policy) for policy in self._policies]
        verdict = self._bucket.take_all(f"gist:{self._token_id}", "writes", limits)
        if not verdict.allowed:
            refused = verdict.refused[0].policy
            raise GistBudgetExhausted(
                f"The gist write budget ({refused.quota} per {refused.window_s} s) is used up.",
                headers={"Retry-After": str(verdict.retry_after_s or 1)},
            )


class GistSync:
    """Writes a key's newest version to its gist and records the revision.

    With `locks`, every sync of a key - the state_sync function's and write-through's in any api
    instance - holds the key's sync lease while it reads the register and writes the gist, so syncs
    of one key are serial: each writes the newest version it finds (a gist never moves back to an
    older one) and a key's first sync creates its one gist. A holder paused past its lease could
    still land a stale write; the lease is kept well past a gist write's own timeouts.
    """

    def __init__(
        self,
        store: StateStore,
        gist: GistClient,
        codec: Codec,
        budget: GistWriteBudget | None,
        locks: LockManager | None = None,
    ) -> None:
        self._store = store
        self._gist = gist
        self._codec = codec
        self._budget = budget
        self._locks = locks

    def bind_invocation(self, context: Any) -> None:
        """Bound the Gist client's retries and waits by this invocation's remaining time."""
        self._gist.register_lambda_context(context)

    def sync(self, key: str) -> SyncOutcome:
        """Bring the key's gist up to the register's version (no-op when it already is), under its sync lease."""
        if self._locks is None:
            return self._sync(key)
        lease = self._locks.acquire(f"gistsync#{key}", uuid.uuid4().hex, SYNC_LEASE_S, wait_s=SYNC_LOCK_WAIT_S)
        try:
            return self._sync(key)
        finally:
            try:
                self._locks.release(lease)
            except LockLost:
                logger.warning("gist sync lease lost before release", extra={"key": key})

    def _sync(self, key: str) -> SyncOutcome:
        register = self._store.register(key)
        if register is None or register.synced_version >= register.version:
            return SyncOutcome(key, None)
        if self._budget is not None:
            self._budget.take()
        envelope = self._codec.encrypt(register.value_json.encode("utf-8"), {"cmdgate:state-key": key})
        document = {
            "key": key,
            "version": register.version,
            "updated_at": register.updated_at,
            "deleted": register.deleted,
            "digest": register.digest,
            "value": envelope,
        }
        content = json.dumps(document, indent=2, sort_keys=True)
        if register.gist_id is None:
            created = self._gist.create_gist({STATE_FILE: content}, f"cmdgate state: {key}")
            gist_id = self._store.remember_gist(key, created.id)
            gist = created if gist_id == created.id else self._gist.update_file(gist_id, STATE_FILE, content)
        else:
            gist_id = register.gist_id
            gist = self._gist.update_file(gist_id, STATE_FILE, content)
        revision = gist.history[0].version if gist.history else None
        if revision is None:
            raise errors.InternalError()
        stored = gist.files.get(STATE_FILE)
        if stored is not None and not stored.truncated and stored.content is not None and stored.content != content:
            # What GitHub kept is not what we wrote: report it, and do not count the version as synced.
            logger.error("gist content differs from what was written", extra={"key": key, "revision": revision})
            raise GistContentMismatch(f"The gist of {key!r} does not hold what was written.")
        self._store.mark_synced(key, register.version, gist_id, revision)
        logger.info("state synced to gist", extra={"key": key, "version": register.version, "revision": revision})
        return SyncOutcome(key, register.version, revision)

    def find_version(self, key: str, gist_id: str, version: int, max_revisions: int = 10) -> tuple[Any, bool] | None:
        """`(value, deleted)` of `version` read back from the key's gist history (the newest
        `max_revisions` revisions: it costs GitHub calls inside a request), decrypted and checked
        against the digest written with it; None if it is not there."""
        for commit in self._gist.list_commits(gist_id, per_page=max_revisions):
            document = json.loads(self._gist.read_file(self._gist.get_revision(gist_id, commit.version), STATE_FILE))
            found = int(document.get("version", 0))
            if found < version:
                return None  # newest first: the version is older than anything retained here
            if found == version:
                value = json.loads(self._codec.decrypt(document["value"], {"cmdgate:state-key": key}))
                if digest_of(value) != document.get("digest"):
                    logger.error("gist revision fails its digest", extra={"key": key, "revision": commit.version})
                    raise GistContentMismatch(f"Gist revision {commit.version} of {key!r} fails its digest.")
                return value, bool(document.get("deleted", False))
        return None


class GistContentMismatch(errors.ProblemError):
    """A gist holds something other than what cmdgate wrote (tampering, or a GitHub fault)."""

    status, code, title = 502, "GIST_CONTENT_MISMATCH", "Gist content does not match"


class GistSyncPending(errors.DependencyUnavailable):
    """Write-through could not reach the gist: the write is committed, its sync is queued."""

    code, title = "GIST_SYNC_PENDING", "Committed, gist sync pending"


class GistSyncUnscheduled(errors.DependencyUnavailable):
    """Committed, but neither the gist write nor its queued sync went through: the healer must re-sync it."""

    code, title = "GIST_SYNC_UNSCHEDULED", "Committed, gist sync not scheduled"


class WriteThroughSync:
    """`STATE_GIST_MODE=write_through`: a write returns only once its gist revision exists."""

    def __init__(self, sync: Callable[[], GistSync], fallback: Any) -> None:
        self._sync = sync
        self._fallback = fallback

    def schedule(self, key: str, version: int) -> None:
        """Sync now; on failure queue the sync (nothing is lost) and answer 503 with the committed version."""
        try:
            self._sync().sync(key)
        except Exception as failure:  # noqa: BLE001 - any failure: queue the sync, tell the caller
            try:
                self._fallback.schedule(key, version)
            except Exception:  # noqa: BLE001 - the write stands; the caller must not be told it is synced
                raise GistSyncUnscheduled(
                    f"Version {version} of {key!r} is committed; neither its gist write nor its sync is scheduled.",
                    headers={"Retry-After": "5", "State-Version": str(version)},
                ) from None
            retry_after = getattr(failure, "headers", {}).get("Retry-After", "5")
            raise GistSyncPending(
                f"Version {version} of {key!r} is committed; its gist revision is not written yet.",
                headers={"Retry-After": str(retry_after), "State-Version": str(version)},
            ) from None


def parse_sync_message(body: str) -> str:
    """The key a sync message names."""
    message = json.loads(body)
    key = message.get("key") if isinstance(message, dict) else None
    if not isinstance(key, str) or not key:
        raise ValueError("sync message without a key")
    return key
