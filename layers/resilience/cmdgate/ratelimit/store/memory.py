"""An in-process `RateLimitStore`: the same conditional semantics, for tests and single-process use."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from cmdgate.ratelimit.store import base
from cmdgate.ratelimit.store.base import OutcomeSlot, OutcomeWindow, RateLimitStore, TatWrite


class InMemoryRateLimitStore(RateLimitStore):
    """Dicts behind one lock, so each method is atomic like a conditional UpdateItem; expiry is ignored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tats: dict[tuple[str, str], int] = {}
        self._outcomes: dict[str, OutcomeWindow] = {}

    def take(
        self, principal_id: str, scope: str, writes: Sequence[TatWrite], *, expires_at: int
    ) -> tuple[bool, dict[str, int | None]]:
        """Every write's branch applied if every condition holds, else none."""
        key = base.bucket_key(principal_id, scope)
        with self._lock:
            found = {w.slot: self._tats.get((key, w.slot)) for w in writes}
            new: dict[str, int | None] = {}
            for write in writes:
                tat = found[write.slot]
                if write.busy:
                    if tat is None or not write.now_us <= tat <= write.max_tat_us:
                        return False, found
                    new[write.slot] = tat + write.interval_us
                else:
                    if tat is not None and tat >= write.now_us:
                        return False, found
                    new[write.slot] = write.now_us + write.interval_us
            for slot, tat in new.items():
                assert tat is not None
                self._tats[(key, slot)] = tat
            return True, new

    def load_outcomes(self, principal_id: str) -> OutcomeWindow:
        """The principal's outcome record."""
        with self._lock:
            return self._outcomes.get(base.outcomes_key(principal_id), OutcomeWindow())

    def add_outcome(
        self, principal_id: str, *, window: int, reset: bool, requests: int, refused: int, expires_at: int
    ) -> tuple[bool, OutcomeWindow]:
        """Count one outcome in sub-window `window`'s slot, if the slot is as `reset` assumes."""
        key = base.outcomes_key(principal_id)
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
        key = base.outcomes_key(principal_id)
        with self._lock:
            old = self._outcomes.get(key, OutcomeWindow())
            if old.tightened_until > now:
                return False, old
            new = replace(old, tightened_until=until)
            self._outcomes[key] = new
            return True, new
