"""Lock records in this process only: for tests, and for a deployment without a control table."""

from __future__ import annotations

import threading

from cmdgate.locks.store.base import LockRecord, LockStore, lock_key


class InMemoryLockStore(LockStore):
    """A dict of records behind one lock, so each method is atomic like a conditional UpdateItem.

    Items never expire here (DynamoDB's TTL deletion is not emulated).
    """

    def __init__(self) -> None:
        self._records: dict[str, LockRecord] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> LockRecord | None:
        """The current record."""
        with self._lock:
            return self._records.get(lock_key(name))

    def acquire(
        self, name: str, owner: str, *, now: float, lease_until: float, expires_at: int, fence_floor: int
    ) -> tuple[bool, LockRecord | None]:
        """Take the lease if none is in force."""
        key = lock_key(name)
        with self._lock:
            current = self._records.get(key)
            if current is not None and current.lease_until > now:
                return False, current
            fence = (current.fence if current is not None else fence_floor) + 1
            updated = LockRecord(name, owner, fence, lease_until, expires_at)
            self._records[key] = updated
            return True, updated

    def extend(
        self, name: str, owner: str, fence: int, *, now: float, lease_until: float, expires_at: int
    ) -> tuple[bool, LockRecord | None]:
        """Move the lease's end if it is still ours and in force."""
        key = lock_key(name)
        with self._lock:
            current = self._records.get(key)
            if current is None or current.owner != owner or current.fence != fence or current.lease_until <= now:
                return False, current
            updated = LockRecord(name, owner, fence, lease_until, expires_at)
            self._records[key] = updated
            return True, updated

    def release(self, name: str, owner: str, fence: int, *, expires_at: int) -> tuple[bool, LockRecord | None]:
        """End the lease if it is still ours."""
        key = lock_key(name)
        with self._lock:
            current = self._records.get(key)
            if current is None or current.owner != owner or current.fence != fence:
                return False, current
            updated = LockRecord(name, owner, fence, 0.0, expires_at)
            self._records[key] = updated
            return True, updated
