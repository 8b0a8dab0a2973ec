"""Lease locks with fencing tokens: one orchestrating class over a `LockStore`.

Exactly these store calls happen (with `DynamoDBLockStore` each is ONE
conditional UpdateItem, and nothing is read first):

- `acquire`: one call. It succeeds when the lock is free, released, or its lease
  has expired by the caller's clock (checked in the condition against the
  stored `lease_until`, not left to TTL deletion, which is lazy); it sets the
  owner and lease end and adds one to the fence. Refused, it raises `LockHeld`
  with the holder and the time left on its lease, taken from the refusal itself.
  With `wait_s`, it retries after jittered sleeps until `wait_s` has passed: one
  call per attempt;
- `heartbeat`: one call, conditional on the owner AND the fence still being the
  lock's AND the lease not having expired; `LockLost` otherwise. Heartbeats are
  explicit: Lambda freezes background threads between invocations, so a
  heartbeat thread would silently stop while its lease runs out;
- `release`: one call, conditional on the owner AND the fence. A lease that was
  taken over (or whose item is gone) raises `LockLost`: the caller learns that
  its critical section was not exclusive. Releasing an expired lease nobody
  took over, or releasing twice, is allowed and harmless.

A lease is never longer than `max_lease_s`, nor than the caller's remaining
invocation time (`remaining_s()`, e.g. `context.get_remaining_time_in_millis() / 1000`)
minus `safety_margin_s`: a lease must not outlive the invocation holding it, or
a timed-out Lambda would keep everyone else out until it expired.

Fencing. `Lease.fence` grows with every acquisition of a lock, so a later holder
always has a larger one; guarded writes carry it (`cmdgate.locks.fencing`) and the
guarded item refuses any fence older than the newest it has accepted. Expiry is
judged on each caller's clock, so clock skew or a paused holder can make two
owners believe they hold one lock for a while: the fence, not the lease, is
what keeps their writes safe. (The record version of the AWS DynamoDB Lock
Client is a random GUID: it tells that a lease changed, but two GUIDs cannot be
ordered, so a store cannot refuse "older" writes with it. It is not a fencing token.)

The fence counter lives in the lock item, and TTL deletes abandoned items. A new
item therefore starts its fence at the clock in milliseconds, not at zero: one
item takes at most ~1000 writes a second (a partition's limit), so an item
recreated `expire_item_after_s` after the last lease of a deleted one starts
above every fence that one issued, and guarded items that remember an old fence
keep accepting the new holders.

Owners must be unique per holder (e.g. the Lambda request id): a lock is not
re-entrant, and acquiring with the owner of a live lease is refused like any other.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from aws_lambda_powertools import Logger

from cmdgate.locks.config import LockConfig
from cmdgate.locks.exceptions import LockError, LockHeld, LockLost
from cmdgate.locks.store.base import LockRecord, LockStore

logger = Logger(child=True)

RemainingTime = Callable[[], float]


@dataclass(frozen=True)
class Lease:
    """A lease held on lock `name` by `owner` until `expires_at` (epoch seconds), with its fencing token."""

    name: str
    owner: str
    fence: int
    expires_at: float

    def remaining_s(self, now: float) -> float:
        """Seconds left on the lease at `now` (negative once it has expired)."""
        return self.expires_at - now


class LockManager:
    """Acquires, extends and releases leases on named locks kept in `store`."""

    def __init__(
        self,
        store: LockStore,
        config: LockConfig | None = None,
        clock: Callable[[], float] = time.time,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.config = config or LockConfig()
        self._clock = clock  # wall clock: lease ends are compared across machines
        self._sleep = sleep
        self._rng = rng or random.Random()

    def acquire(
        self,
        name: str,
        owner: str,
        lease_s: float | None = None,
        remaining_s: RemainingTime | None = None,
        *,
        wait_s: float = 0.0,
    ) -> Lease:
        """Take the lock for `lease_s` (capped) or raise `LockHeld`, retrying for up to `wait_s` seconds."""
        if not owner:
            raise ValueError("a lock owner must not be empty")
        deadline = self._clock() + max(0.0, wait_s)
        attempt = 0
        held: LockHeld | None = None
        while True:
            now = self._clock()
            try:
                length = self._lease_length(name, lease_s, remaining_s)
            except LockError:
                if held is not None:  # the wait used up the invocation: report what kept us out
                    raise held from None
                raise
            try:
                return self._acquire_once(name, owner, now, length)
            except LockHeld as refused:
                held = refused
                left = deadline - self._clock()
                if left <= 0:
                    raise
                self._sleep(min(left, self._backoff(refused.retry_after_s)))
                attempt += 1
                logger.debug("waiting for lock", extra={"lock": name, "attempt": attempt})

    def heartbeat(self, lease: Lease, extend_s: float | None = None, remaining_s: RemainingTime | None = None) -> Lease:
        """Make the lease end `extend_s` (capped) from now, if still ours and in force; else `LockLost`.

        `LockError` (no call made) when the invocation has too little time left to extend it.
        """
        now = self._clock()
        length = self._lease_length(lease.name, extend_s, remaining_s)
        until = now + length
        applied, record = self.store.extend(
            lease.name, lease.owner, lease.fence, now=now, lease_until=until, expires_at=self._expires(until)
        )
        if not applied or record is None:
            raise LockLost(lease.name, lease.owner, lease.fence)
        return Lease(lease.name, lease.owner, record.fence, record.lease_until)

    def release(self, lease: Lease) -> None:
        """End the lease; `LockLost` if the lock has been taken by another acquisition since."""
        applied, _ = self.store.release(lease.name, lease.owner, lease.fence, expires_at=self._expires(self._clock()))
        if not applied:
            raise LockLost(lease.name, lease.owner, lease.fence)

    def current(self, name: str) -> LockRecord | None:
        """The lock's record as stored (one read; for diagnosis and the healer, not for deciding)."""
        return self.store.load(name)

    def lock(self, name: str, owner: str) -> LeaseLock:
        """A `LeaseLock` on `name` for `owner` that shares this manager."""
        return LeaseLock(self.store, name, owner, self.config, self._clock, manager=self)

    # -- internals --------------------------------------------------------

    def _acquire_once(self, name: str, owner: str, now: float, length: float) -> Lease:
        until = now + length
        applied, record = self.store.acquire(
            name,
            owner,
            now=now,
            lease_until=until,
            expires_at=self._expires(until),
            fence_floor=math.floor(now * 1000),
        )
        if applied and record is not None:
            return Lease(name, owner, record.fence, record.lease_until)
        if record is None:  # refused without an item: only a store that lost it mid-call
            raise LockHeld(name, None, 0.0)
        raise LockHeld(name, record.owner, record.lease_until - now)

    def _lease_length(self, name: str, requested: float | None, remaining_s: RemainingTime | None) -> float:
        config = self.config
        length = config.default_lease_s if requested is None else requested
        if not length > 0:
            raise ValueError("a lease length must be positive")
        length = min(length, config.max_lease_s)
        if remaining_s is not None:
            length = min(length, remaining_s() - config.safety_margin_s)
            if length <= 0:
                raise LockError(name, "Too little time is left in this invocation to hold the lock.")
        return length

    def _backoff(self, retry_after_s: float) -> float:
        poll = self.config.poll_s
        if 0 < retry_after_s <= poll:
            # The lease is about to end: wake just after it, spread so the waiters do not all collide.
            return retry_after_s + self._rng.uniform(0, self.config.jitter_s)
        # A long lease (or an unknown one): look again now and then, in case it is released early.
        return self._rng.uniform(poll / 2, poll)

    def _expires(self, at: float) -> int:
        return math.ceil(at + self.config.expire_item_after_s)


class LeaseLock:
    """One named lock for one owner, remembering its current lease; usable as a context manager.

    with LeaseLock(store, f"state#{key}", request_id, remaining_s=remaining) as lease:
        client.update_item(**fenced_update(request, lease.fence))
    """

    def __init__(
        self,
        store: LockStore,
        name: str,
        owner: str,
        config: LockConfig | None = None,
        clock: Callable[[], float] = time.time,
        *,
        remaining_s: RemainingTime | None = None,
        sleep: Callable[[float], None] = time.sleep,
        manager: LockManager | None = None,
    ) -> None:
        self.name = name
        self.owner = owner
        self._remaining_s = remaining_s
        self._manager = manager or LockManager(store, config, clock, sleep=sleep)
        self.lease: Lease | None = None

    def acquire(self, lease_s: float | None = None, *, wait_s: float = 0.0) -> Lease:
        """Take the lock (see `LockManager.acquire`)."""
        self.lease = self._manager.acquire(self.name, self.owner, lease_s, self._remaining_s, wait_s=wait_s)
        return self.lease

    def heartbeat(self, extend_s: float | None = None) -> Lease:
        """Extend the current lease (see `LockManager.heartbeat`)."""
        self.lease = self._manager.heartbeat(self._held(), extend_s, self._remaining_s)
        return self.lease

    def release(self) -> None:
        """Release the current lease (see `LockManager.release`)."""
        lease, self.lease = self._held(), None
        self._manager.release(lease)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.release()
        except LockLost:
            if exc is None:
                raise
            # The block's own error is the one to report; the lost lease only goes to the log.
            logger.warning("lock lost before release", extra={"lock": self.name})

    def _held(self) -> Lease:
        if self.lease is None:
            raise LockLost(self.name, self.owner, 0)
        return self.lease
