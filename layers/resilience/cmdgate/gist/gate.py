"""What every client of one token shares inside a process: the write lock, write spacing, rate-limit blocks.

GitHub counts limits per token (per user), not per client object, so two
`GistClient`s built with the same token in one process must not each believe
they have the whole budget. Gates are found by a SHA-256 digest of the token,
so the token itself is never kept as a key. Times are in the clients' own
clock (monotonic by default); waits are clamped to the length that was asked
for, so a clock that differs between clients can never make one wait longer.
"""

from __future__ import annotations

import hashlib
import math
import threading


class TokenGate:
    """One token's write lock, when its last write ended, and how long its calls are blocked."""

    def __init__(self) -> None:
        self.write_lock = threading.Lock()  # held for a whole mutating call, retries and waits included
        self._lock = threading.Lock()
        self._last_write_at: float | None = None
        self._blocked: tuple[float, float] = (-math.inf, 0.0)  # (until, length) for every call
        self._writes_blocked: tuple[float, float] = (-math.inf, 0.0)  # (until, length) for writes only
        self._secondary_strikes = 0

    def write_wait(self, now: float, interval_s: float) -> float:
        """Seconds to wait before the next write may start, given `interval_s` between writes."""
        with self._lock:
            if self._last_write_at is None:
                return 0.0
            return min(interval_s, max(0.0, self._last_write_at + interval_s - now))

    def record_write(self, now: float) -> None:
        """A write starts now."""
        with self._lock:
            self._last_write_at = now

    def blocked_for(self, now: float, *, write: bool) -> float:
        """Seconds until a rate limit seen earlier lets a call (a write, if `write`) through."""
        with self._lock:
            blocks = [self._blocked, self._writes_blocked] if write else [self._blocked]
            return max(min(length, max(0.0, until - now)) for until, length in blocks)

    def block(self, now: float, wait_s: float, *, writes_only: bool) -> None:
        """Hold back calls (or only writes) for `wait_s` seconds from `now`."""
        with self._lock:
            current = self._writes_blocked if writes_only else self._blocked
            if now + wait_s > current[0]:
                if writes_only:
                    self._writes_blocked = (now + wait_s, wait_s)
                else:
                    self._blocked = (now + wait_s, wait_s)

    @property
    def secondary_strikes(self) -> int:
        """Secondary limits hit in a row without a Retry-After (sets the exponential wait)."""
        with self._lock:
            return self._secondary_strikes

    def strike(self) -> None:
        """One more secondary limit without a Retry-After."""
        with self._lock:
            self._secondary_strikes += 1

    def clear_strikes(self) -> None:
        """A call went through: the next secondary limit starts again at the floor."""
        with self._lock:
            self._secondary_strikes = 0


_gates: dict[str, TokenGate] = {}
_gates_lock = threading.Lock()


def gate_for(token: str) -> TokenGate:
    """The process-wide gate of `token`."""
    key = hashlib.sha256(token.encode("utf-8")).hexdigest()
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = TokenGate()
        return gate
