"""The storage seam of the rate limiter: compare-and-set writes on one record per bucket or principal.

Token buckets keep one number, the theoretical arrival time (TAT) of the GCRA,
in integer microseconds since the epoch; integers keep every comparison exact,
so rounding can never let one extra request through. Outcome windows keep
request / refused counts in two slots, one per fixed sub-window (even, odd), so
a new sub-window overwrites the one before the previous and nothing piles up.

Every write is conditional and returns `(applied, record)`: the state after the
write, or the state that made the condition fail, so the caller never needs a
separate read to learn why it lost.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OutcomeSlot:
    """Counts of one fixed sub-window; `window` is its number, floor(t / window_s), None if unused."""

    window: int | None = None
    requests: int = 0
    refused: int = 0


@dataclass(frozen=True)
class OutcomeWindow:
    """A principal's outcome counts as last read: sub-window k lives in slot k % 2."""

    slots: tuple[OutcomeSlot, OutcomeSlot] = (OutcomeSlot(), OutcomeSlot())
    tightened_until: float = 0.0

    def slot(self, window: int) -> OutcomeSlot:
        """The counts of sub-window `window` (zero if its slot holds another sub-window)."""
        slot = self.slots[window % 2]
        return slot if slot.window == window else OutcomeSlot(window)


@dataclass(frozen=True)
class TatWrite:
    """One bucket's half of a take: which GCRA branch to write for the TAT in `slot` of an item.

    busy:  if `now_us <= tat <= max_tat_us`: tat += interval_us
    idle:  if the TAT is absent or `tat < now_us`: tat = now_us + interval_us
    """

    slot: str  # "" is the item's first bucket (attribute `tat`); others are `tat#<slot>`
    busy: bool
    now_us: int
    interval_us: int
    max_tat_us: int

    @property
    def attribute(self) -> str:
        """The item attribute holding this bucket's TAT."""
        return f"tat#{self.slot}" if self.slot else "tat"


class RateLimitStore(ABC):
    """Where buckets and outcome windows live, shared by every Lambda instance."""

    # -- token buckets (GCRA) -------------------------------------------------

    @abstractmethod
    def take(
        self, principal_id: str, scope: str, writes: Sequence[TatWrite], *, expires_at: int
    ) -> tuple[bool, dict[str, int | None]]:
        """Apply every write if every write's condition holds, else none (one conditional write).

        Returns (applied, TAT per slot): after the write, or as found when a condition failed.
        """

    # -- outcome windows (adaptive tightening) ----------------------------------

    @abstractmethod
    def load_outcomes(self, principal_id: str) -> OutcomeWindow:
        """The principal's outcome record (an empty one if there is none)."""

    @abstractmethod
    def add_outcome(
        self, principal_id: str, *, window: int, reset: bool, requests: int, refused: int, expires_at: int
    ) -> tuple[bool, OutcomeWindow]:
        """Count `requests` outcomes (`refused` of them refused) in sub-window `window`'s slot.

        reset=False: add to the slot if it already holds `window` (or a later one);
        reset=True: start the slot at this outcome if it holds an earlier sub-window or nothing.
        """

    @abstractmethod
    def tighten(self, principal_id: str, *, until: float, now: float, expires_at: int) -> tuple[bool, OutcomeWindow]:
        """Set `tightened_until = until` unless a tightening is already in force at `now`."""


def bucket_key(principal_id: str, scope: str) -> str:
    """The item key of one bucket: `rl#<principal>#<scope>`."""
    return f"rl#{_escape(principal_id)}#{_escape(scope)}"


def outcomes_key(principal_id: str) -> str:
    """The item key of one principal's outcome windows: `rla#<principal>`."""
    return f"rla#{_escape(principal_id)}"


def _escape(part: str) -> str:
    if not part:
        raise ValueError("principal_id and scope must not be empty")
    # '#' separates the parts: escaping it (and '%') keeps ("a#b", "c") and ("a", "b#c") apart.
    escaped = part.replace("%", "%25").replace("#", "%23")
    # DynamoDB keys stop at 2048 bytes; a long JWT subject must not make every request a 500.
    if len(escaped.encode("utf-8")) > 512:
        return "sha256:" + hashlib.sha256(part.encode("utf-8")).hexdigest()
    return escaped
