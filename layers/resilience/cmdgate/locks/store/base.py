"""The storage seam of the lease locks: one record per lock, changed only by conditional writes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

KEY_PREFIX = "lock#"


@dataclass(frozen=True)
class LockRecord:
    """A lock as stored: its last owner, its fence counter and when the current lease ends.

    A released lease keeps its owner (for diagnosis) with `lease_until = 0`.
    """

    name: str
    owner: str | None
    fence: int
    lease_until: float
    expires_at: int

    def held_at(self, now: float) -> bool:
        """Whether a lease is in force at `now` (by the caller's clock)."""
        return self.owner is not None and self.lease_until > now


class LockStore(ABC):
    """Where lock records live. Each method is one atomic conditional write (one request).

    Write methods return `(applied, record)`: whether the write happened, and the
    record as it now is (after the write, or as it was when the condition failed;
    None when there is no record at all).
    """

    @abstractmethod
    def load(self, name: str) -> LockRecord | None:
        """The current record (a strongly consistent read), None if there is none."""

    @abstractmethod
    def acquire(
        self, name: str, owner: str, *, now: float, lease_until: float, expires_at: int, fence_floor: int
    ) -> tuple[bool, LockRecord | None]:
        """If no lease is in force at `now`: take it, fence = (fence if any, else `fence_floor`) + 1."""

    @abstractmethod
    def extend(
        self, name: str, owner: str, fence: int, *, now: float, lease_until: float, expires_at: int
    ) -> tuple[bool, LockRecord | None]:
        """If `owner` and `fence` still hold the lease and it is in force at `now`: move its end to `lease_until`."""

    @abstractmethod
    def release(self, name: str, owner: str, fence: int, *, expires_at: int) -> tuple[bool, LockRecord | None]:
        """If `owner` and `fence` are still the lock's: end the lease now (the fence is kept)."""


def lock_key(name: str) -> str:
    """The item key of one lock: `lock#<name>` (the prefix alone keeps it apart from other items)."""
    if not name:
        raise ValueError("a lock needs a name")
    return KEY_PREFIX + name
