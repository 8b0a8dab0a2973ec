"""The token bucket: GCRA over a shared `RateLimitStore`, one conditional write per request.

GCRA keeps one number per bucket, the theoretical arrival time (TAT). With the
emission interval I = w/q (rounded up to a whole microsecond) and a burst of
B = q·I (about w), a request at `now` succeeds iff max(TAT, now) + I - now <= B,
and then TAT becomes max(TAT, now) + I. A full (idle) bucket thus admits q
requests at once, then one per I. Each success pushes TAT by at least I and
TAT never runs more than B ahead of the clock, so in ANY interval of length T
at most (T + B) / I <= q + T·q/w requests succeed; rounding I up only makes
that stricter. Refusals do not move TAT (they cost the caller nothing but
the 429), and every admitted request counts, replays included.

DynamoDB has no max(), so the two branches are two conditional UpdateItems:

- busy (stored TAT >= now): `SET tat = tat + I IF tat BETWEEN now AND now + B - I`;
- idle (no item, or TAT < now): `SET tat = now + I IF tat absent OR tat < now`.

A failed condition returns the stored TAT (`ALL_OLD`), which says which branch
was right, or that the request is refused and exactly for how long. The first
write is picked from the TAT this instance last saw for the bucket: a TAT not
behind the clock proves the bucket busy (TATs only grow); anything else (in
the past, or never seen) guesses idle. DynamoDB calls per `take()`:

- allowed, bucket busy and this instance saw it busy ............... 1
- allowed, bucket idle or absent (seen here or not) ................. 1
- refused, in every case (the failed write carries the TAT back) .... 1
- allowed, bucket busy but not known busy here: this instance never
  saw it (its first request to a hot bucket) or saw it idle and
  another instance has taken since ................................... 2

Concurrent writers serialise on the item: each write is atomic and
conditional, so no interleaving admits more than the bound. The clock is the
caller's; instances whose clocks disagree by d can exceed the bound by about
d·q/w requests. TTL deletion only ever removes a bucket whose TAT is past
(plus a margin), which reads exactly like the full bucket it is.

Store errors propagate: whether to fail open is the caller's decision.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cmdgate.ratelimit.policy import RateLimitDecision, RateLimitPolicy
from cmdgate.ratelimit.store.base import RateLimitStore

US = 1_000_000
EXPIRY_MARGIN_S = 60  # TTL is checked against AWS's clock, not ours: keep buckets a minute past their TAT
MAX_ATTEMPTS = 4  # two suffice unless instance clocks disagree; refuse rather than loop


@dataclass(frozen=True)
class _Gcra:
    interval_us: int  # I: one request's worth of time
    burst_us: int  # B = q·I: how far TAT may run ahead of the clock

    @classmethod
    def of(cls, policy: RateLimitPolicy) -> _Gcra:
        interval = -(-policy.window_s * US // policy.quota)  # ceil: a slower refill never exceeds the bound
        return cls(interval, policy.quota * interval)


class TokenBucket:
    """Admits or refuses requests per (principal, scope) bucket under a `RateLimitPolicy`."""

    def __init__(
        self,
        store: RateLimitStore,
        *,
        clock: Callable[[], float] = time.time,
        max_hints: int = 10_000,
    ) -> None:
        self.store = store
        self._clock = clock  # wall clock: every instance compares TATs against it
        self._max_hints = max_hints
        # Last TAT seen per bucket: only picks which write to try first, never decides.
        self._hints: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def take(
        self, principal_id: str, scope: str, policy: RateLimitPolicy, now: float | None = None
    ) -> RateLimitDecision:
        """Count one request against the (principal, scope) bucket; the decision says whether it may run."""
        now_us = round((self._clock() if now is None else now) * US)
        gcra = _Gcra.of(policy)
        max_tat = now_us + gcra.burst_us - gcra.interval_us  # the latest TAT that still admits one more
        bucket = (principal_id, scope)
        hint = self._hint(bucket)
        busy = hint is not None and hint >= now_us
        for _ in range(MAX_ATTEMPTS):
            if busy:
                expires_at = _expiry(now_us + gcra.burst_us)
                applied, tat = self.store.advance(
                    principal_id,
                    scope,
                    now_us=now_us,
                    interval_us=gcra.interval_us,
                    max_tat_us=max_tat,
                    expires_at=expires_at,
                )
            else:
                expires_at = _expiry(now_us + gcra.interval_us)
                applied, tat = self.store.restart(
                    principal_id, scope, now_us=now_us, interval_us=gcra.interval_us, expires_at=expires_at
                )
            if tat is not None:
                self._remember(bucket, tat)
            if applied and tat is not None:
                return _allowed(policy, gcra, now_us, tat)
            if tat is not None and tat > max_tat:
                return _refused(policy, gcra, now_us, tat)
            # Wrong branch: the failed write showed the bucket idle (or gone), or busy with room left.
            busy = tat is not None and tat >= now_us
        # Only reachable when instance clocks disagree enough to keep flipping the branch.
        return RateLimitDecision(False, policy, 0, 1, 1)

    def _hint(self, bucket: tuple[str, str]) -> int | None:
        with self._lock:
            return self._hints.get(bucket)

    def _remember(self, bucket: tuple[str, str], tat: int) -> None:
        with self._lock:
            self._hints[bucket] = tat
            self._hints.move_to_end(bucket)
            while len(self._hints) > self._max_hints:
                self._hints.popitem(last=False)


def _allowed(policy: RateLimitPolicy, gcra: _Gcra, now_us: int, tat: int) -> RateLimitDecision:
    remaining = min(policy.quota, max(0, (now_us + gcra.burst_us - tat) // gcra.interval_us))
    # With room left, t is when the bucket is full again; with none, when the next request fits.
    full_in, next_in = tat - now_us, tat - (now_us + gcra.burst_us - gcra.interval_us)
    return RateLimitDecision(True, policy, remaining, _ceil_s(full_in if remaining > 0 else next_in))


def _refused(policy: RateLimitPolicy, gcra: _Gcra, now_us: int, tat: int) -> RateLimitDecision:
    wait = _ceil_s(tat - (now_us + gcra.burst_us - gcra.interval_us))
    retry_after = max(1, wait)
    return RateLimitDecision(False, policy, 0, retry_after, retry_after)


def _ceil_s(us: int) -> int:
    return max(0, -(-us // US))


def _expiry(tat_us: int) -> int:
    return math.ceil(tat_us / US) + EXPIRY_MARGIN_S
