"""Adaptive tightening: a principal that keeps getting refused gets a smaller quota for a while.

Outcomes (the final status of each request) are counted per principal over a
sliding window made of two fixed sub-windows of `window_s`: the current one,
plus the previous one weighted by how much of it still overlaps the window.
When at least `min_requests` are in the window and the refused share (401,
403, 422, 429 by default) is over `refused_ratio`, the principal is
tightened: its quota is scaled by `tighten_factor` (name "tightened") for at
least `cooldown_s`, and after that for as long as the window still looks bad.
A tightened principal keeps its token bucket (the bucket is per principal
and scope, not per policy), so tightening never hands out a fresh burst.

DynamoDB cost, on top of the bucket's own write:

- `record()`: 1 UpdateItem (an atomic ADD into the current sub-window's slot,
  returning the whole record); 2 when the slot must first be started over, and
  this instance's copy did not predict it (at most once per sub-window and
  principal per instance). When the record it gets back crosses the threshold
  and no tightening is in force, 1 more conditional UpdateItem sets
  `tightened_until` (once per cooldown per principal, whichever instance wins).
- `effective_policy()`: 0 calls when this instance has a copy of the
  principal's record younger than `refresh_s`, which every `record()` refreshes
  (so a principal active on this instance costs nothing); else 1 GetItem
  (eventually consistent, half a read unit).

So a steady principal costs one extra write per request, and the tightening
flag rides back on that write instead of needing its own read. A tightening
decided by another instance is seen here at the latest one request later.

Store errors never fail a request: `record()` logs and drops the outcome,
`effective_policy()` logs and returns the base policy.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from aws_lambda_powertools import Logger

from cmdgate.ratelimit.config import AdaptiveConfig
from cmdgate.ratelimit.policy import RateLimitPolicy
from cmdgate.ratelimit.store.base import OutcomeWindow, RateLimitStore

logger = Logger(child=True)

MAX_ATTEMPTS = 3


class AdaptiveLimiter:
    """Records outcomes per principal and tightens the policy of principals that are mostly refused."""

    def __init__(
        self,
        store: RateLimitStore,
        config: AdaptiveConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_cached: int = 10_000,
    ) -> None:
        self.store = store
        self.config = config or AdaptiveConfig()
        self._clock = clock
        self._max_cached = max_cached
        self._cache: OrderedDict[str, tuple[float, OutcomeWindow]] = OrderedDict()  # principal -> (read at, record)
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, float]] = {}

    def record(self, principal_id: str, status_code: int, now: float | None = None) -> None:
        """Count one finished request of the principal (refused if its status is in `refused_statuses`)."""
        now = self._clock() if now is None else now
        refused = status_code in self.config.refused_statuses
        requests = self._batched(principal_id, refused, now)
        if requests == 0:
            return
        try:
            self._record(principal_id, requests, int(refused), now)
        except Exception:
            logger.warning("rate limit outcome not recorded", extra={"principal": principal_id}, exc_info=True)

    def effective_policy(self, principal_id: str, base: RateLimitPolicy, now: float | None = None) -> RateLimitPolicy:
        """`base`, or its tightened form while the principal is tightened."""
        now = self._clock() if now is None else now
        try:
            outcomes = self._fresh(principal_id, now)
        except Exception:
            logger.warning("rate limit outcomes unavailable", extra={"principal": principal_id}, exc_info=True)
            return base
        if self._is_tightened(outcomes, now):
            return base.scaled(self.config.tighten_factor, self.config.policy_name)
        return base

    def is_tightened(self, principal_id: str, now: float | None = None) -> bool:
        """Whether the principal currently gets the tightened policy."""
        now = self._clock() if now is None else now
        return self._is_tightened(self._fresh(principal_id, now), now)

    def window_counts(self, outcomes: OutcomeWindow, now: float) -> tuple[float, float]:
        """(requests, refused) in the sliding window ending at `now`, the previous sub-window weighted."""
        window = self._window(now)
        elapsed = (now - window * self.config.window_s) / self.config.window_s
        weight = max(0.0, 1.0 - elapsed)  # the share of the previous sub-window still inside the window
        current, previous = outcomes.slot(window), outcomes.slot(window - 1)
        return (
            current.requests + previous.requests * weight,
            current.refused + previous.refused * weight,
        )

    # -- internals ----------------------------------------------------------

    def _batched(self, principal_id: str, refused: bool, now: float) -> int:
        """How many outcomes to write now (0: keep batching). Good outcomes are written in batches,
        so the common request costs no call; a refusal is written at once with the batch so far.
        A batch dies with its execution environment: tightening can only come later, never wrongly."""
        with self._lock:
            count, since = self._pending.get(principal_id, (0, now))
            count += 1
            if refused or count >= self.config.success_batch or now - since >= self.config.success_batch_s:
                self._pending.pop(principal_id, None)
                return count
            self._pending[principal_id] = (count, since)
            return 0

    def _record(self, principal_id: str, requests: int, refused: int, now: float) -> None:
        window = self._window(now)
        config = self.config
        expires_at = math.ceil(now) + 2 * config.window_s + config.cooldown_s
        cached = self._cached(principal_id)
        # Start the slot over unless this instance last saw it holding the current sub-window.
        reset = cached is None or cached[1].slots[window % 2].window != window
        outcomes: OutcomeWindow | None = None
        for _ in range(MAX_ATTEMPTS):
            applied, outcomes = self.store.add_outcome(
                principal_id, window=window, reset=reset, requests=requests, refused=refused, expires_at=expires_at
            )
            if applied:
                break
            # The failed write returned the slot as it is: take the other branch.
            stored = outcomes.slots[window % 2].window
            reset = stored is None or stored < window
        else:
            logger.warning("rate limit outcome lost to concurrent writers", extra={"principal": principal_id})
        if outcomes is None:
            return
        self._remember(principal_id, now, outcomes)
        if outcomes.tightened_until <= now and self._over_threshold(outcomes, now):
            _, outcomes = self.store.tighten(
                principal_id, until=now + config.cooldown_s, now=now, expires_at=expires_at
            )
            self._remember(principal_id, now, outcomes)
            logger.info("rate limit tightened", extra={"principal": principal_id, "until": outcomes.tightened_until})

    def _is_tightened(self, outcomes: OutcomeWindow, now: float) -> bool:
        # The window counts too: between the end of a cooldown and the next record()
        # (which re-arms it) a principal still misbehaving stays tightened.
        return outcomes.tightened_until > now or self._over_threshold(outcomes, now)

    def _over_threshold(self, outcomes: OutcomeWindow, now: float) -> bool:
        requests, refused = self.window_counts(outcomes, now)
        return requests >= self.config.min_requests and refused > self.config.refused_ratio * requests

    def _fresh(self, principal_id: str, now: float) -> OutcomeWindow:
        cached = self._cached(principal_id)
        if cached is not None and now - cached[0] < self.config.refresh_s:
            return cached[1]
        outcomes = self.store.load_outcomes(principal_id)
        self._remember(principal_id, now, outcomes)
        return outcomes

    def _window(self, now: float) -> int:
        return math.floor(now / self.config.window_s)

    def _cached(self, principal_id: str) -> tuple[float, OutcomeWindow] | None:
        with self._lock:
            return self._cache.get(principal_id)

    def _remember(self, principal_id: str, now: float, outcomes: OutcomeWindow) -> None:
        with self._lock:
            self._cache[principal_id] = (now, outcomes)
            self._cache.move_to_end(principal_id)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
