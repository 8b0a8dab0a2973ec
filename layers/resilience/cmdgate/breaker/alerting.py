"""A breaker store that alerts when a breaker opens: the store is where exactly one instance wins the move.

Every transition is a compare-and-set on the shared record, so of all the instances that see a
breaker trip, one applies the move to `open`; only that one alerts (`breaker_open`, the breaker's
name as the id), and the alerts' own window keeps a flapping breaker to one alert per window.
An alert that cannot be sent is logged, never raised into the call the breaker guards. Every
applied move is also counted (EMF `BreakerStateChanges`, by `state`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from aws_lambda_powertools import Logger, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from cmdgate.breaker.store.base import BreakerRecord, BreakerStore, BucketKey, Counts, StoredState

logger = Logger(child=True)


class AlertingBreakerStore(BreakerStore):
    """Delegates to `store`; `alert(name)` runs after a transition to open that this caller applied."""

    def __init__(self, store: BreakerStore, alert: Callable[[str], object]) -> None:
        self._store = store
        self._alert = alert

    def load(self, name: str) -> BreakerRecord:
        return self._store.load(name)

    def add_outcomes(
        self, name: str, *, version: int, counts: Mapping[BucketKey, Counts], drop: Iterable[BucketKey], now: float
    ) -> tuple[bool, BreakerRecord]:
        return self._store.add_outcomes(name, version=version, counts=counts, drop=drop, now=now)

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
        applied, record = self._store.transition(
            name, version=version, state=state, opened_until=opened_until, drop=drop, now=now
        )
        if applied:
            # One count per move (open or closed), by the instance that applied it; the breaker's name
            # stays out of the dimensions (http.request breakers are per host: unbounded).
            namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "cmdgate")
            with single_metric("BreakerStateChanges", MetricUnit.Count, 1, namespace=namespace) as metric:
                metric.add_dimension(name="state", value=state)
        if applied and state == "open":
            try:
                self._alert(name)
            except Exception:  # an alert never fails the guarded call
                logger.exception("breaker_open alert not sent", extra={"breaker": name})
        return applied, record

    def acquire_probe(self, name: str, *, version: int, now: float, max_probes: int) -> tuple[bool, BreakerRecord]:
        return self._store.acquire_probe(name, version=version, now=now, max_probes=max_probes)
