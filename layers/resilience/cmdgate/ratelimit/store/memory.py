"""An in-process `RateLimitStore`: the same conditional semantics, for tests and single-process use."""

from __future__ import annotations

import threading
from dataclasses import replace

from cmdgate.ratelimit.store.base import OutcomeSlot, OutcomeWindow, RateLimitStore, bucket_key, outcomes_key


class InMemoryRateLimitStore(RateLimitStore):
    """Dicts behind one lock, so each method is atomic like a conditional UpdateItem; expiry is ignored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tats: dict[str, int] = {}
        self._outcomes: dict[str, OutcomeWindow] = {}

    def advance(
        self, principal_id: str, scope: str, *, now_us: int, interval_us: int, max_tat_us: int, expires_at: int
    ) -> tuple[bool, int | None]:
        """If `now_us <= tat <= max_tat_us`: tat += interval_us."""
        key = bucket_key(principal_id, scope)
        with self._lock:
            tat = self._tats.get(key)
            if tat is None or not now_us <= tat <= max_tat_us:
                return False, tat
            self._tats[key] = tat + interval_us
            return True, tat + interval_us

    def restart(
        self, principal_id: str, scope: str, *, now_us: int, interval_us: int, expires_at: int
    ) -> tuple[bool, int | None]:
        """If the bucket is absent or `tat < now_us`: tat = now_us + interval_us."""
        key = bucket_key(principal_id, scope)
        with self._lock:
            tat = self._tats.get(key)
            if tat is not None and tat >= now_us:
                return False, tat
            self._tats[key] = now_us + interval_us
            return True, now_us + interval_us

    def load_outcomes(self, principal_id: str) -> OutcomeWindow:
        """The principal's outcome record."""
        with self._lock:
            return self._outcomes.get(outcomes_key(principal_id), OutcomeWindow())

    def add_outcome(
        self, principal_id: str, *, window: int, reset: bool, requests: int, refused: int, expires_at: int
    ) -> tuple[bool, OutcomeWindow]:
        """Count one outcome in sub-window `window`'s slot, if the slot is as `reset` assumes."""
        key = outcomes_key(principal_id)
        with self._lock:
            old = self._outcomes.get(key, OutcomeWindow())
            index = window % 2
            slot = old.slots[index]
            if reset and (slot.window is None or slot.window < window):
                new_slot = OutcomeSlot(window, requests, refused)
            elif not reset and slot.window is not None and slot.window >= window:
                new_slot = OutcomeSlot(slot.window, slot.requests + requests, slot.refused + refused)
            else:
                return False, old
            slots = (new_slot, old.slots[1]) if index == 0 else (old.slots[0], new_slot)
            new = replace(old, slots=slots)
            self._outcomes[key] = new
            return True, new

    def tighten(self, principal_id: str, *, until: float, now: float, expires_at: int) -> tuple[bool, OutcomeWindow]:
        """Set `tightened_until` unless a tightening is in force at `now`."""
        key = outcomes_key(principal_id)
        with self._lock:
            old = self._outcomes.get(key, OutcomeWindow())
            if old.tightened_until > now:
                return False, old
            new = replace(old, tightened_until=until)
            self._outcomes[key] = new
            return True, new
