"""Gist sync: every dirty key's newest version written to its shard gist, one write per gist, within a budget.

The layout is in `cmdgate.state.layout`. A sync starts from one key (a message of the sync queue,
or a write-through write): it reads the dirty keys of that key's namespace from the register's
dirty index, places keys not yet in a shard, and writes each dirty gist once - the key's own
first, then the others oldest unsynced write first, up to `max_gists` - with one
`PATCH /gists/{id}` carrying every dirty key of that gist (a new shard is created with its first
files and its manifest in the `POST`). A request is split only to stay under `request_bytes`.

Every write of a gist holds the gist's sync lease (`gistsync#<namespace>/<n>`, `gistsync#<key>`
for a format-1 gist), from any function, and re-reads its keys' registers under it, so writes of
one gist are serial and each carries the newest versions: a gist never moves a key back. Versions
written in between are coalesced. Gists have no conditional writes, so a write whose answer was
lost is never sent again blind: the gist is read back first, and what it holds decides.
An outage only delays sync: the register keeps every write and the key stays dirty.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from cmdgate import errors
from cmdgate.crypto import Codec
from cmdgate.gist import Gist, GistClient, GistWriteUnconfirmed
from cmdgate.locks import LockLost, LockManager
from cmdgate.ratelimit import RateLimitPolicy, TokenBucket
from cmdgate.state import layout
from cmdgate.state.layout import FileNamer, ShardRef, namespace_of
from cmdgate.state.model import Register
from cmdgate.state.shards import ShardDirectory
from cmdgate.state.store import StateStore

logger = Logger(child=True)
# A gist's sync lease outlasts one write with its retries; waiters give up in time to answer.
SYNC_LEASE_S = 60.0
SYNC_LOCK_WAIT_S = 10.0
STATE_FILE = layout.LEGACY_FILE
REQUEST_BYTES = 4_000_000  # a safe body size for one gist request
DIRTY_KEYS_PER_PASS = 500  # dirty keys of a namespace read per sync
GISTS_PER_SYNC = 4  # gists one message's sync may write (its own first): the others' messages get their turn
MIN_REMAINING_S = 15.0  # a gist write is not started with less time than this left
UNCONFIRMED_RESENDS = 2  # a write whose answer was lost, read back and found missing, is sent again at most this often
_JSON_OVERHEAD = 64  # bytes a file adds to a request body beyond its name and content
_DOCUMENT_BYTES = 1024  # a file's fields and envelope header beyond the value itself (about 600 measured)


class GistBudgetExhausted(errors.ProblemError):
    """The write budget for the GitHub token is used up; sync waits (the message returns later)."""

    status, code, title = 503, "GIST_BUDGET_EXHAUSTED", "Gist write budget exhausted"


class GistWriteBudget:
    """GitHub's secondary limits as token buckets shared by every sync instance (80/min, 500/h by default).

    The >= 1 s spacing between writes is kept by the Gist client of the single sync instance
    (reserved concurrency 1).
    """

    def __init__(self, bucket: TokenBucket, token_id: str, policies: tuple[RateLimitPolicy, ...]) -> None:
        self._bucket = bucket
        self._token_id = token_id
        self._policies = policies
        self.remaining: int | None = None  # writes left in the tightest window after the last take

    def take(self) -> None:
        """Spend one write, or raise GistBudgetExhausted with the wait in Retry-After."""
        # Every limit in one item and one conditional write: a refusal by one spends nothing of the others.
        limits = [(f"{policy.window_s}s", policy) for policy in self._policies]
        verdict = self._bucket.take_all(f"gist:{self._token_id}", "writes", limits)
        self.remaining = min(decision.remaining for decision in verdict.decisions)
        if not verdict.allowed:
            refused = verdict.refused[0].policy
            raise GistBudgetExhausted(
                f"The gist write budget ({refused.quota} per {refused.window_s} s) is used up.",
                headers={"Retry-After": str(verdict.retry_after_s or 1)},
            )


@dataclass(frozen=True)
class SyncOutcome:
    """What a sync did: the starting key's version written (None: nothing to write) and the gist writes made."""

    key: str
    written_version: int | None
    revision: str | None = None
    gist_writes: int = 0
    files_written: int = 0
    lag_s: float | None = None  # how old the gist's oldest unsynced write was when it was written
    budget_left: int | None = None  # gist writes left in the token's tightest window


class SyncDeferred(Exception):
    """The key's gist is not written now (it lingers, or time ran out); its message comes back in `wait_s`."""

    def __init__(self, key: str, wait_s: float) -> None:
        super().__init__(key)
        self.wait_s = wait_s


@dataclass(frozen=True)
class _Target:
    """One gist to write: a shard, or a format-1 gist of a single key."""

    lease: str
    shard: ShardRef | None
    keys: tuple[str, ...]
    oldest: float


@dataclass
class _File:
    key: str
    version: int
    name: str
    content: str


class GistSync:
    """Writes dirty keys to their gists and records, per key, the version and revision written."""

    def __init__(
        self,
        store: StateStore,
        gist: GistClient,
        codec: Codec,
        budget: GistWriteBudget | None,
        locks: LockManager | None = None,
        *,
        shards: ShardDirectory,
        namer: Callable[[], FileNamer],
        stack_id: str,
        plaintext: bool,
        request_bytes: int = REQUEST_BYTES,
        linger_s: float = 0.0,
        remaining_s: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._gist = gist
        self._codec = codec
        self._budget = budget
        self._locks = locks
        self._shards = shards
        self._namer = namer
        self._stack_id = stack_id
        self._plaintext = plaintext
        self._request_bytes = request_bytes
        self._linger_s = linger_s
        self._clock = clock  # wall clock, as writes stamp dirty_at
        self._remaining_s = remaining_s or (lambda: float("inf"))

    def bind_invocation(self, context: Any) -> None:
        """Bound the Gist client's retries and this sync's passes by the invocation's remaining time."""
        self._gist.register_lambda_context(context)
        self._remaining_s = lambda: context.get_remaining_time_in_millis() / 1000.0

    # -- one sync -------------------------------------------------------------

    def sync(self, key: str, *, max_gists: int = GISTS_PER_SYNC, now: bool = False) -> SyncOutcome:
        """Write the gist holding `key` and up to `max_gists - 1` other dirty gists of its namespace.

        A gist is written once its oldest unsynced write is `linger_s` old (so one write carries a
        burst, and a busy gist spends one write per `linger_s`, not one per state write); before
        that, or without the time to write, SyncDeferred says when to come back. `now` (write-through)
        writes the key's gist at once.
        """
        own = self._store.register(key)
        if own is None or own.synced_version >= own.version:
            return SyncOutcome(key, None)
        if not now and own.dirty_at is not None and own.dirty_at + self._linger_s > self._clock():
            # One read per deferral: if an older key makes the gist due sooner, that key's message writes it.
            raise SyncDeferred(key, own.dirty_at + self._linger_s - self._clock())
        dirty = [k for k in self._store.dirty_keys(namespace_of(key), DIRTY_KEYS_PER_PASS) if k != key]
        registers = self._store.registers(dirty)  # the key's own register is read already
        registers[key] = own
        targets = self._targets([r for r in registers.values() if r.synced_version < r.version])
        mine = next(t for t in targets if key in t.keys)
        lingers = self._lingering(mine)
        if lingers > 0 and not now:
            raise SyncDeferred(key, lingers)
        others = sorted((t for t in targets if t is not mine and self._lingering(t) <= 0), key=lambda t: t.oldest)
        writes = files = 0
        written: int | None = None
        revision: str | None = None
        for target in [mine, *others][: max(1, max_gists)]:
            if self._remaining_s() < MIN_REMAINING_S:
                break
            carried = self._write(target)
            writes += carried.requests
            files += len(carried.versions)
            if target is mine:
                written, revision = carried.versions.get(key), carried.revision
        if written is None and self._store_behind(key):
            raise SyncDeferred(key, 1.0)
        lag_s = max(0.0, self._clock() - mine.oldest) if written is not None and mine.oldest > 0 else None
        budget_left = self._budget.remaining if self._budget is not None else None
        return SyncOutcome(key, written, revision, writes, files, lag_s, budget_left)

    def _lingering(self, target: _Target) -> float:
        """Seconds until the target's oldest unsynced write is `linger_s` old (<= 0: write it now)."""
        return target.oldest + self._linger_s - self._clock()

    def _store_behind(self, key: str) -> bool:
        register = self._store.register(key)
        return register is not None and register.synced_version < register.version

    def _targets(self, dirty: list[Register]) -> list[_Target]:
        """Group dirty keys by the gist they go to, placing keys that have none yet."""
        ordered = sorted(dirty, key=lambda r: (r.dirty_at or 0.0, r.key))
        shards = self._placed([r for r in ordered if r.shard is None and r.gist_id is None])
        groups: dict[str, list[Register]] = {}
        shard_of: dict[str, ShardRef | None] = {}
        for register in ordered:
            if register.key in shards:
                shard: ShardRef | None = shards[register.key]
            elif register.shard is not None:
                shard = ShardRef.parse(register.shard)
            else:
                shard = None  # format 1: the key's own gist
            lease = f"gistsync#{shard.id}" if shard is not None else f"gistsync#{register.key}"
            groups.setdefault(lease, []).append(register)
            shard_of[lease] = shard
        return [
            _Target(
                lease=lease,
                shard=shard_of[lease],
                keys=tuple(r.key for r in members),
                oldest=min(r.dirty_at or 0.0 for r in members),
            )
            for lease, members in groups.items()
        ]

    def _placed(self, unplaced: list[Register]) -> dict[str, ShardRef | None]:
        """Place keys that are in no gist yet, namespace by namespace, oldest first; None: format 1 after all."""
        by_namespace: dict[str, list[Register]] = {}
        for register in unplaced:
            by_namespace.setdefault(namespace_of(register.key), []).append(register)
        namer = self._namer() if unplaced else None
        where: dict[str, ShardRef | None] = {}
        for namespace, registers in by_namespace.items():
            assert namer is not None
            names = [namer.file_of(r.key) for r in registers]
            sizes = [self._estimated_size(r) + len(n) + _JSON_OVERHEAD for r, n in zip(registers, names, strict=True)]
            shards = self._shards.place_many(namespace, sizes)
            stands = self._store.place_many(
                [(r.key, shard.id, name) for r, shard, name in zip(registers, shards, names, strict=True)]
            )
            for register, shard, size in zip(registers, shards, sizes, strict=True):
                shard_id, _, gist_id = stands[register.key]
                if shard_id == shard.id:
                    where[register.key] = shard
                    continue
                self._shards.release(shard, size)  # placed elsewhere meanwhile
                if shard_id is None and gist_id is None:
                    raise errors.InternalError()
                where[register.key] = ShardRef.parse(shard_id) if shard_id is not None else None
        return where

    # -- one gist -------------------------------------------------------------

    @contextmanager
    def _lease(self, name: str) -> Iterator[None]:
        if self._locks is None:
            yield
            return
        lease = self._locks.acquire(name, uuid.uuid4().hex, SYNC_LEASE_S, wait_s=SYNC_LOCK_WAIT_S)
        try:
            yield
        finally:
            try:
                self._locks.release(lease)
            except LockLost:
                logger.warning("gist sync lease lost before release", extra={"lease": name})

    def _write(self, target: _Target) -> _Carried:
        """Under the gist's lease: re-read its keys, write the newest versions, mark them synced."""
        with self._lease(target.lease):
            fresh = self._store.registers(list(target.keys))
            dirty = [r for r in fresh.values() if r.synced_version < r.version]
            if not dirty:
                return _Carried()
            if target.shard is None:
                return self._write_legacy(dirty[0])
            return self._write_shard(target.shard, dirty)

    def _write_shard(self, shard: ShardRef, dirty: list[Register]) -> _Carried:
        carried = _Carried()
        files = [_File(r.key, r.version, r.gist_file or self._namer().file_of(r.key), self._content(r)) for r in dirty]
        gist_id = self._shards.gist_of(shard)
        for chunk in self._chunks(files):
            if gist_id is None:
                gist = self._create_shard(shard, chunk)
                gist_id = self._shards.remember_gist(shard, gist.id)
                if gist_id != gist.id:  # cannot happen under the lease; never write a key into two gists
                    raise errors.InternalError()
            else:
                gist = self._patch(gist_id, chunk)
            carried.add(self._confirm(gist, chunk))
        return carried

    def _write_legacy(self, register: Register) -> _Carried:
        if register.gist_id is None:
            raise errors.InternalError()
        content = layout.encode_legacy(
            self._codec,
            register.key,
            register.version,
            register.value_json,
            deleted=register.deleted,
            updated_at=register.updated_at,
            digest=register.digest,
        )
        chunk = [_File(register.key, register.version, STATE_FILE, content)]
        carried = _Carried()
        carried.add(self._confirm(self._patch(register.gist_id, chunk), chunk))
        return carried

    def _estimated_size(self, register: Register) -> int:
        """A key's file size from its value, without sealing it (no KMS call to place a key)."""
        value_bytes = len(register.value_json.encode("utf-8"))
        # base64 of the ciphertext when encrypted; JSON escaping of the sealed text when not.
        return (value_bytes * 4 // 3 if not self._plaintext else value_bytes * 2) + _DOCUMENT_BYTES

    def _content(self, register: Register) -> str:
        return layout.encode(
            self._codec,
            register.key,
            register.version,
            register.value_json,
            deleted=register.deleted,
            updated_at=register.updated_at,
            digest=register.digest,
            plaintext=self._plaintext,
        )

    def _chunks(self, files: list[_File]) -> Iterator[list[_File]]:
        chunk: list[_File] = []
        size = 0
        for file in files:
            cost = len(file.content.encode("utf-8")) + len(file.name) + _JSON_OVERHEAD
            if chunk and size + cost > self._request_bytes:
                yield chunk
                chunk, size = [], 0
            chunk.append(file)
            size += cost
        if chunk:
            yield chunk

    def _take_budget(self) -> None:
        if self._budget is not None:
            self._budget.take()

    def _patch(self, gist_id: str, chunk: list[_File]) -> Gist:
        """One PATCH of the chunk's files; a lost answer is read back, and the write resent only if it did not land."""
        files = {f.name: f.content for f in chunk}
        for _ in range(UNCONFIRMED_RESENDS + 1):
            self._take_budget()
            try:
                return self._gist.update_files(gist_id, files, blind_retry=False)
            except GistWriteUnconfirmed:
                logger.warning("gist write unconfirmed: reading it back", extra={"gist_id": gist_id})
                current = self._gist.get_gist(gist_id)
                if self._holds(current, chunk):
                    return current
        raise GistWriteUnconfirmed("update_files", "the gist write did not land after it was resent")

    def _create_shard(self, shard: ShardRef, chunk: list[_File]) -> Gist:
        """Create the shard's gist with its manifest and first files, adopting one an earlier attempt left."""
        description = layout.description(self._stack_id, shard)
        files = {layout.MANIFEST_FILE: layout.manifest(self._stack_id, shard), **{f.name: f.content for f in chunk}}
        for _ in range(UNCONFIRMED_RESENDS + 1):
            orphan = self._find_shard_gist(description)
            if orphan is not None:
                # An earlier create landed but its answer (or its record) was lost: that gist is the shard's.
                gist_id = self._shards.remember_gist(shard, orphan)
                current = self._gist.get_gist(gist_id)
                return current if self._holds(current, chunk) else self._patch(gist_id, chunk)
            self._take_budget()
            try:
                return self._gist.create_gist(files, description, blind_retry=False)
            except GistWriteUnconfirmed:
                logger.warning("gist create unconfirmed: looking for it", extra={"shard": shard.id})
        raise GistWriteUnconfirmed("create_gist", "the gist was not created after it was resent")

    def _find_shard_gist(self, description: str) -> str | None:
        """A gist of this token already holding the shard (newest updated first; the first page only)."""
        for listed in self._gist.list_gists(per_page=100):
            if listed.description == description and layout.MANIFEST_FILE in listed.files:
                return listed.id
        return None

    def _holds(self, gist: Gist, chunk: list[_File]) -> bool:
        for file in chunk:
            if file.name not in gist.files:
                return False
            if self._gist.read_file(gist, file.name) != file.content:
                return False
        return True

    def _confirm(self, gist: Gist, chunk: list[_File]) -> _Carried:
        """Check what the answer shows against what was sent, then mark each file's version synced."""
        revision = gist.version
        if revision is None:
            raise errors.InternalError()
        for file in chunk:
            stored = gist.files.get(file.name)
            if stored is None or (
                not stored.truncated and stored.content is not None and stored.content != file.content
            ):
                # What GitHub kept is not what we wrote: report it, and do not count the version as synced.
                logger.error("gist content differs from what was written", extra={"revision": revision})
                raise GistContentMismatch("A gist does not hold what was written.")
        self._store.mark_synced_many({f.key: f.version for f in chunk}, gist.id, revision)
        logger.info("state synced to gist", extra={"gist_id": gist.id, "revision": revision, "files": len(chunk)})
        return _Carried(requests=1, versions={f.key: f.version for f in chunk}, revision=revision)

    # -- reading back -----------------------------------------------------------

    def find_version(
        self, register: Register, version: int, max_revisions: int = 10, max_bytes: int = 8_000_000
    ) -> tuple[Any, bool] | None:
        """`(value, deleted)` of `version` read back from the key's gist history, decrypted and
        checked; None if it is not there. Bounded, since it costs GitHub calls inside a request:
        the newest `max_revisions` revisions, and no more than `max_bytes` of the key's file read."""
        gist_id = register.gist_id
        if gist_id is None:
            return None
        name = register.gist_file or STATE_FILE
        read = 0
        for commit in self._gist.list_commits(gist_id, per_page=max_revisions):
            revision = self._gist.get_revision(gist_id, commit.version)
            file = revision.files.get(name)
            if file is None:
                return None  # newest first: the key was not in this gist yet
            read += file.size
            if read > max_bytes:
                return None
            content = self._gist.read_file(revision, name)
            try:
                found = layout.version_in(content)
                if found < version:
                    return None  # the version is older than anything retained here
                if found > version:
                    continue
                decoded = layout.decode(self._codec, register.key, content)
            except layout.InvalidStateFile:
                logger.error("gist revision fails its check", extra={"revision": commit.version})
                raise GistContentMismatch(
                    f"Gist revision {commit.version} of {register.key!r} fails its check."
                ) from None
            return decoded.value, decoded.deleted
        return None


@dataclass
class _Carried:
    """What writes of one gist carried: requests made, key -> version written, the last revision."""

    requests: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    revision: str | None = None

    def add(self, other: _Carried) -> None:
        self.requests += other.requests
        self.versions.update(other.versions)
        self.revision = other.revision or self.revision


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
            self._sync().sync(key, max_gists=1, now=True)
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
