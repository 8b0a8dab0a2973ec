"""Knobs of the lease locks, with defaults that suit a lock held for one Lambda invocation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LockConfig:
    """Lease lengths, the margin kept before the invocation's deadline, item expiry and waiting."""

    default_lease_s: float = 10.0  # lease length when the caller names none
    max_lease_s: float = 60.0  # no lease (or heartbeat extension) is longer than this
    safety_margin_s: float = 1.0  # a lease ends at least this long before the holder's invocation does
    expire_item_after_s: int = 86400  # TTL: an abandoned lock item disappears this long after its lease
    poll_s: float = 0.5  # while waiting on a long lease, look again about this often (an early release)
    jitter_s: float = 0.1  # waiters on an expiring lease wake up to this much after it, spread at random

    def __post_init__(self) -> None:
        if not 0 < self.default_lease_s <= self.max_lease_s:
            raise ValueError("need 0 < default_lease_s <= max_lease_s")
        if self.safety_margin_s < 0:
            raise ValueError("safety_margin_s must not be negative")
        # The item (and with it the fence counter) may only disappear well after any lease could end.
        if self.expire_item_after_s < self.max_lease_s:
            raise ValueError("expire_item_after_s must be at least max_lease_s")
        if self.poll_s <= 0 or self.jitter_s < 0:
            raise ValueError("poll_s must be positive, jitter_s not negative")
