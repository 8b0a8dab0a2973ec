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

Several buckets can be taken at once (`take_all`): a caller's own bucket and
a command's tighter one live in one item (`tat`, `tat#<slot>`), and one
UpdateItem carries every bucket's branch under all their conditions, so the
request is admitted by all or by none, and a misprediction of any branch
costs one more write as above (the failed write returns every TAT).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cmdgate.ratelimit.policy import MAX_WINDOW_S, RateLimitDecision, RateLimitPolicy, RateLimitVerdict
from cmdgate.ratelimit.store.base import RateLimitStore, TatWrite

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
        self._hints: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._lock = threading.Lock()
        # Takes, and how many needed another write after a mispredicted branch (reported per request).
        self.takes = 0
        self.retried_takes = 0

    def take(
        self, principal_id: str, scope: str, policy: RateLimitPolicy, now: float | None = None
    ) -> RateLimitDecision:
        """Count one request against the (principal, scope) bucket; the decision says whether it may run."""
        return self.take_all(principal_id, scope, [("", policy)], now).decisions[0]

    def take_all(
        self,
        principal_id: str,
        scope: str,
        limits: Sequence[tuple[str, RateLimitPolicy]],
        now: float | None = None,
    ) -> RateLimitVerdict:
        """Count one request against several buckets of one item at once (all or none, one write).

        `limits` are (slot, policy) pairs: slot "" is the item's first bucket. A request is admitted
        only if every bucket has room, and then takes from each.
        """
        if not limits or len({slot for slot, _ in limits}) != len(limits):
            raise ValueError("take_all needs distinct slots")
        now_us = round((self._clock() if now is None else now) * US)
        gcras = [_Gcra.of(policy) for _, policy in limits]
        max_tats = [now_us + g.burst_us - g.interval_us for g in gcras]  # the latest TAT that still admits one
        busy = []
        for slot, _ in limits:
            hint = self._hint((principal_id, scope, slot))
            busy.append(hint is not None and hint >= now_us)
        self.takes += 1
        for attempt in range(MAX_ATTEMPTS):
            if attempt == 1:
                self.retried_takes += 1
            writes = [
                TatWrite(slot, busy[n], now_us, gcras[n].interval_us, max_tats[n]) for n, (slot, _) in enumerate(limits)
            ]
            # One expiry for the whole item, which may hold other buckets than these (a command's, taken
            # by another request): past the latest TAT any policy allows (B <= the longest window).
            expires_at = _expiry(now_us + max(*(g.burst_us for g in gcras), MAX_WINDOW_S * US))
            applied, tats = self.store.take(principal_id, scope, writes, expires_at=expires_at)
            for slot, tat in tats.items():
                if tat is not None:
                    self._remember((principal_id, scope, slot), tat)
            if applied:
                return RateLimitVerdict.of(
                    [_allowed(policy, gcras[n], now_us, tats[slot] or 0) for n, (slot, policy) in enumerate(limits)]
                )
            refused = [tats[slot] is not None and (tats[slot] or 0) > max_tats[n] for n, (slot, _) in enumerate(limits)]
            if any(refused):
                return RateLimitVerdict.of(
                    [
                        _refused(policy, gcras[n], now_us, tats[slot] or 0)
                        if refused[n]
                        else _unspent(policy, gcras[n], now_us, tats[slot])
                        for n, (slot, policy) in enumerate(limits)
                    ]
                )
            # Wrong branch for some bucket: the failed write showed each TAT as it is.
            busy = [(tats[slot] is not None and (tats[slot] or 0) >= now_us) for slot, _ in limits]
        # Only reachable when instance clocks disagree enough to keep flipping the branch.
        return RateLimitVerdict.of([RateLimitDecision(False, policy, 0, 1, 1) for _, policy in limits])

    def _hint(self, bucket: tuple[str, str, str]) -> int | None:
        with self._lock:
            return self._hints.get(bucket)

    def _remember(self, bucket: tuple[str, str, str], tat: int) -> None:
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


def _unspent(policy: RateLimitPolicy, gcra: _Gcra, now_us: int, tat: int | None) -> RateLimitDecision:
    # A bucket with room that did not take (another one refused): reported as it stands.
    if tat is None or tat < now_us:
        return RateLimitDecision(True, policy, policy.quota, 0)
    return _allowed(policy, gcra, now_us, tat)


def _refused(policy: RateLimitPolicy, gcra: _Gcra, now_us: int, tat: int) -> RateLimitDecision:
    wait = _ceil_s(tat - (now_us + gcra.burst_us - gcra.interval_us))
    retry_after = max(1, wait)
    return RateLimitDecision(False, policy, 0, retry_after, retry_after)


def _ceil_s(us: int) -> int:
    return max(0, -(-us // US))


def _expiry(tat_us: int) -> int:
    return math.ceil(tat_us / US) + EXPIRY_MARGIN_S
