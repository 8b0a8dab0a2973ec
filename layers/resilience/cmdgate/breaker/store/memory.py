"""Breaker records in this process only: for tests, and for a deployment without a control table."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace

from cmdgate.breaker.store.base import BreakerRecord, BreakerStore, BucketKey, Counts, StoredState


class InMemoryBreakerStore(BreakerStore):
    """A dict of records behind a lock; the same compare-and-set rules as the DynamoDB store."""

    def __init__(self) -> None:
        self._records: dict[str, BreakerRecord] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> BreakerRecord:
        """The current record."""
        with self._lock:
            return self._records.get(name, BreakerRecord())

    def add_outcomes(
        self, name: str, *, version: int, counts: Mapping[BucketKey, Counts], drop: Iterable[BucketKey], now: float
    ) -> tuple[bool, BreakerRecord]:
        """Add counts under the version condition."""
        with self._lock:
            current = self._records.get(name, BreakerRecord())
            if current.version != version:
                return False, current
            buckets = dict(current.buckets)
            for key in drop:
                buckets.pop(key, None)
            for key, (calls, failures) in counts.items():
                old_calls, old_failures = buckets.get(key, (0, 0))
                buckets[key] = (old_calls + calls, old_failures + failures)
            updated = replace(current, buckets=buckets)
            self._records[name] = updated
            return True, updated

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
        """Change state under the version condition."""
        with self._lock:
            current = self._records.get(name, BreakerRecord())
            if current.version != version:
                return False, current
            buckets = dict(current.buckets)
            for key in drop:
                buckets.pop(key, None)
            updated = BreakerRecord(state, version + 1, opened_until, 0, buckets)
            self._records[name] = updated
            return True, updated

    def acquire_probe(self, name: str, *, version: int, now: float, max_probes: int) -> tuple[bool, BreakerRecord]:
        """Take a probe permit under the version condition."""
        with self._lock:
            current = self._records.get(name, BreakerRecord())
            if (
                current.version != version
                or current.state != "open"
                or current.opened_until > now
                or current.probes >= max_probes
            ):
                return False, current
            updated = replace(current, probes=current.probes + 1)
            self._records[name] = updated
            return True, updated
