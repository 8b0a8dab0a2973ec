"""The storage seam of the circuit breaker: one shared record per breaker, changed only by compare-and-set."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

StoredState = Literal["closed", "open"]  # half-open is "open" once `opened_until` has passed
BucketKey = tuple[int, int]  # (record version the counts belong to, bucket number = floor(t / bucket_s))
Counts = tuple[int, int]  # (calls, failures)


@dataclass(frozen=True)
class BreakerRecord:
    """The shared state of one breaker as last read.

    `version` grows by one on every state transition; outcome counts are kept
    per (version, bucket), so counts from an earlier closed period never count
    again, and a writer holding an old version cannot change the state.
    """

    state: StoredState = "closed"
    version: int = 0
    opened_until: float = 0.0
    probes: int = 0
    buckets: Mapping[BucketKey, Counts] = field(default_factory=dict)


class BreakerStore(ABC):
    """Where breaker records live. Every write is conditional on the version the caller read.

    Each method returns `(applied, record)`: whether the write happened, and the
    record as it now is (after the write, or as it was when the condition failed).
    """

    @abstractmethod
    def load(self, name: str) -> BreakerRecord:
        """The current record (a closed version-0 record if there is none)."""

    @abstractmethod
    def add_outcomes(
        self, name: str, *, version: int, counts: Mapping[BucketKey, Counts], drop: Iterable[BucketKey], now: float
    ) -> tuple[bool, BreakerRecord]:
        """Atomically add call/failure counts (and forget the `drop` buckets) if the record is at `version`."""

    @abstractmethod
    def transition(
        self,
        name: str,
        *,
        version: int,
        state: StoredState,
        opened_until: float,
        drop: Iterable[BucketKey],
        now: float,
    ) -> tuple[bool, BreakerRecord]:
        """Set the state, reset probes and bump the version, if the record is at `version`."""

    @abstractmethod
    def acquire_probe(self, name: str, *, version: int, now: float, max_probes: int) -> tuple[bool, BreakerRecord]:
        """Take one half-open probe permit if the record is at `version`, open, past `opened_until`, not full."""
