"""The circuit breaker: one orchestrating class over a shared `BreakerStore`, with an in-memory fast path.

Each Lambda instance keeps a snapshot of the shared record and counts its own
outcomes locally. Exactly these store calls happen (with `DynamoDBBreakerStore`
each is one DynamoDB request):

- closed, call succeeds: NONE while the snapshot is younger than `refresh_s`.
  The first call that finds the snapshot older makes one call: an UpdateItem
  that flushes the locally counted outcomes and returns the shared record
  (or a GetItem when nothing is pending, e.g. the very first call);
- closed, call fails: one UpdateItem that flushes the counts (this failure
  included) and returns the window;
- after every flush, if the shared window has >= `min_calls` calls and a
  failure rate >= the threshold: one more conditional UpdateItem trips the
  breaker (one instance wins; a loser's conditional write is refused and
  returns the current, open record, so losing a race costs no extra read);
- open, before `opened_until`: NONE, refused from the snapshot (a GetItem once
  the snapshot is older than `refresh_s`, so a change made elsewhere is seen);
- half-open (open, past `opened_until`): one conditional UpdateItem to take a
  probe permit; when it is refused the item comes back with the refusal, and
  the instance then refuses locally (no call) until `refresh_s` passes;
  the probe's verdict is one conditional UpdateItem: success closes (and
  clears the window), failure reopens for `open_s`;
- a half-open round whose probes never report (their instance died) is
  restarted by the next caller after `probe_timeout_s`: one more UpdateItem.

So a healthy dependency costs each instance at most one request per `refresh_s`,
and every failure is in the shared window at once, so the trip decision is
taken on the failure that crosses the threshold. Successes reach the window in
batches: those an instance has not flushed yet (at most `refresh_s` old) are
missing, so the shared rate can read a little high and `min_calls` a little low.

If the store itself fails, the breaker logs and keeps deciding from its
snapshot (transitions are then applied locally only): a control-table outage
must not take the protected dependency down with it.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from aws_lambda_powertools import Logger

from cmdgate.breaker.config import BreakerConfig
from cmdgate.breaker.exceptions import CircuitOpen
from cmdgate.breaker.store.base import BreakerRecord, BreakerStore, BucketKey, StoredState

logger = Logger(child=True)

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]

_known: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


@dataclass(frozen=True)
class BreakerStatus:
    """A breaker's state as this process last saw it."""

    name: str
    state: BreakerState
    retry_after_s: int | None = None


class Attempt:
    """One admitted call; `mark_failure()` records a failure that raised nothing (a 503 response)."""

    def __init__(self) -> None:
        self.failed = False

    def mark_failure(self) -> None:
        """Count this call as a failure."""
        self.failed = True


@dataclass(frozen=True)
class _Ticket:
    version: int  # the record version the call was admitted under
    probe: bool


class CircuitBreaker:
    """Closed / open / half-open on the failure rate of a rolling window, shared through `store`."""

    def __init__(
        self,
        name: str,
        store: BreakerStore,
        config: BreakerConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.store = store
        self.config = config or BreakerConfig()
        self._clock = clock  # wall clock: instances compare `opened_until` across machines
        self._record: BreakerRecord | None = None
        self._fetched_at = -math.inf
        self._pending: dict[BucketKey, list[int]] = {}
        self._lock = threading.RLock()
        _known.add(self)

    # -- public -----------------------------------------------------------

    @contextmanager
    def guard(self) -> Iterator[Attempt]:
        """Admit one call or raise `CircuitOpen`; an exception in the block counts as a failure."""
        ticket = self._admit()
        attempt = Attempt()
        try:
            yield attempt
        except Exception as exc:
            self._record_outcome(ticket, failed=self.config.is_failure(exc))
            raise
        self._record_outcome(ticket, failed=attempt.failed)

    def call(self, fn: Callable[[], T], *, failed: Callable[[T], bool] | None = None) -> T:
        """Run `fn` through the breaker; `failed(result)` marks results that are failures."""
        with self.guard() as attempt:
            result = fn()
            if failed is not None and failed(result):
                attempt.mark_failure()
            return result

    def state(self) -> BreakerState:
        """closed, open or half_open (reads the store only if the snapshot is older than `refresh_s`)."""
        now = self._clock()
        with self._lock:
            record = self._fresh_record(now)
            return _state_of(record, now)

    def status(self) -> BreakerStatus | None:
        """The last-seen state, without any I/O; None before the first use."""
        now = self._clock()
        with self._lock:
            record = self._record
        if record is None:
            return None
        state = _state_of(record, now)
        retry_after = math.ceil(record.opened_until - now) if state == "open" else None
        return BreakerStatus(self.name, state, retry_after)

    # -- admission --------------------------------------------------------

    def _admit(self) -> _Ticket:
        now = self._clock()
        with self._lock:
            record = self._fresh_record(now)
            if record.state == "closed":
                return _Ticket(record.version, probe=False)
            if now < record.opened_until:
                raise CircuitOpen(self.name, math.ceil(record.opened_until - now))
            return self._admit_probe(record, now)

    def _admit_probe(self, record: BreakerRecord, now: float) -> _Ticket:
        config = self.config
        if record.probes >= config.half_open_max_probes:
            if now < record.opened_until + config.probe_timeout_s:
                raise CircuitOpen(self.name, 1)
            # The round's probes never reported back: start a new round.
            record = self._transition(record, record.version, "open", now, drop=(), now=now)
            if record.state == "closed":
                return _Ticket(record.version, probe=False)
            if now < record.opened_until or record.probes >= config.half_open_max_probes:
                raise CircuitOpen(self.name, max(1, math.ceil(record.opened_until - now)))
        result = self._store_call(
            lambda: self.store.acquire_probe(
                self.name, version=record.version, now=now, max_probes=config.half_open_max_probes
            )
        )
        if result is None:  # store unreachable: fail open, this call is a local probe
            return _Ticket(record.version, probe=True)
        acquired, current = result
        self._adopt(current, now)
        if acquired:
            return _Ticket(current.version, probe=True)
        if current.state == "closed":
            return _Ticket(current.version, probe=False)
        retry_after = math.ceil(current.opened_until - now) if now < current.opened_until else 1
        raise CircuitOpen(self.name, retry_after)

    # -- outcomes ---------------------------------------------------------

    def _record_outcome(self, ticket: _Ticket, *, failed: bool) -> None:
        now = self._clock()
        with self._lock:
            record = self._record or BreakerRecord()
            if ticket.probe:
                if failed:
                    self._transition(record, ticket.version, "open", now + self.config.open_s, drop=(), now=now)
                else:
                    self._transition(record, ticket.version, "closed", 0.0, drop=tuple(record.buckets), now=now)
                return
            if record.version != ticket.version or record.state != "closed":
                return  # the closed period this call belonged to is over; its outcome no longer matters
            counts = self._pending.setdefault((record.version, self._bucket(now)), [0, 0])
            counts[0] += 1
            counts[1] += int(failed)
            if failed or now - self._fetched_at >= self.config.refresh_s:
                self._sync(now)

    # -- shared state -----------------------------------------------------

    def _fresh_record(self, now: float) -> BreakerRecord:
        if self._record is None or now - self._fetched_at >= self.config.refresh_s:
            self._sync(now)
        return self._record or BreakerRecord()

    def _sync(self, now: float) -> None:
        """One store call: flush pending counts (reading the record back), or just read the record."""
        record = self._record
        oldest = self._bucket(now) - self.config.buckets + 1
        counts: dict[BucketKey, tuple[int, int]] = {}
        if record is not None and record.state == "closed":
            counts = {
                key: (calls, failures)
                for key, (calls, failures) in self._pending.items()
                if key[0] == record.version and key[1] >= oldest
            }
        if record is not None and counts:
            drop = tuple(key for key in record.buckets if key[0] != record.version or key[1] < oldest)
            result = self._store_call(
                lambda: self.store.add_outcomes(self.name, version=record.version, counts=counts, drop=drop, now=now)
            )
        else:
            result = self._store_call(lambda: (True, self.store.load(self.name)))
        if result is None:
            self._fetched_at = now  # try again after refresh_s, keep the pending counts
            if self._record is None:
                self._record = BreakerRecord()
            return
        # Applied or not, the pending counts are settled: a refused flush means the
        # record moved to a new version and those counts belong to a finished period.
        self._pending.clear()
        self._adopt(result[1], now)
        self._maybe_trip(now)

    def _maybe_trip(self, now: float) -> None:
        record = self._record
        if record is None or record.state != "closed":
            return
        calls, failures = self._window(record, now)
        config = self.config
        if calls >= config.min_calls and failures >= config.failure_rate_threshold * calls:
            logger.warning(
                "circuit breaker tripped",
                extra={"breaker": self.name, "calls": calls, "failures": failures},
            )
            self._transition(record, record.version, "open", now + config.open_s, drop=tuple(record.buckets), now=now)

    def _transition(
        self,
        record: BreakerRecord,
        version: int,
        state: StoredState,
        opened_until: float,
        *,
        drop: tuple[BucketKey, ...],
        now: float,
    ) -> BreakerRecord:
        result = self._store_call(
            lambda: self.store.transition(
                self.name, version=version, state=state, opened_until=opened_until, drop=drop, now=now
            )
        )
        # With the store unreachable the transition is applied locally until it answers again.
        updated = replace(record, state=state, opened_until=opened_until, probes=0) if result is None else result[1]
        self._adopt(updated, now)
        return updated

    def _adopt(self, record: BreakerRecord, now: float) -> None:
        self._record = record
        self._fetched_at = now

    def _window(self, record: BreakerRecord, now: float) -> tuple[int, int]:
        newest = self._bucket(now)
        oldest = newest - self.config.buckets + 1
        calls = failures = 0
        for (version, bucket), (c, f) in record.buckets.items():
            if version == record.version and oldest <= bucket <= newest:
                calls += c
                failures += f
        return calls, failures

    def _bucket(self, now: float) -> int:
        return int(now // self.config.bucket_s)

    def _store_call(self, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except Exception:
            logger.warning("circuit breaker store unavailable", extra={"breaker": self.name}, exc_info=True)
            return None


def _state_of(record: BreakerRecord, now: float) -> BreakerState:
    if record.state == "closed":
        return "closed"
    return "open" if now < record.opened_until else "half_open"


def open_breakers() -> list[BreakerStatus]:
    """Breakers of this process whose last-seen state is open or half-open (no I/O), by name."""
    worst: dict[str, BreakerStatus] = {}
    for breaker in list(_known):
        status = breaker.status()
        if status is None or status.state == "closed":
            continue
        if status.name not in worst or status.state == "open":
            worst[status.name] = status
    return [worst[name] for name in sorted(worst)]
