"""GitHub's rate limits per token: the primary hourly budget and the secondary limit on writes."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.wrappers import Response

from cmdgate_local.gist_server.responses import DOC_RATE, DOC_SECONDARY, Reject, error

PRIMARY_WINDOW_S = 3600.0
ANONYMOUS_LIMIT = 60
# What GitHub's secondary limit calls content-creating requests on this API.
_CONTENT_CREATING = frozenset({"POST", "PATCH"})


@dataclass
class Limits:
    """Rate-limit budgets per token, as GitHub applies them per user."""

    primary_per_hour: int = 5000
    secondary_per_minute: int = 80
    secondary_per_hour: int = 500
    # GitHub documents both 403 and 429 for secondary limits.
    secondary_status: int = 403

    def as_json(self) -> dict[str, object]:
        return {
            "primary_per_hour": self.primary_per_hour,
            "secondary_per_minute": self.secondary_per_minute,
            "secondary_per_hour": self.secondary_per_hour,
            "secondary_status": self.secondary_status,
        }


def check_secondary_status(status: int) -> None:
    if status not in (403, 429):
        raise ValueError("secondary_status must be 403 or 429")


def wait_for_room(times: list[float], limit: int, window_s: float, now: float) -> float:
    """Seconds until a sliding window holding `times` (oldest first) has room for one more."""
    if len(times) < limit:
        return 0.0
    if limit <= 0:
        return window_s
    return times[-limit] + window_s - now


@dataclass
class _PrimaryBucket:
    used: int = 0
    reset_at: float = 0.0


class RateLimiter:
    """The windows spent so far against `limits`; the caller serialises access."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._primary: dict[str | None, _PrimaryBucket] = {}
        self._writes: dict[str, deque[float]] = {}

    def reset(self) -> None:
        """Forget every window; keep the limits."""
        self._primary.clear()
        self._writes.clear()

    def _bucket(self, token: str | None) -> _PrimaryBucket:
        now = self._clock()
        bucket = self._primary.setdefault(token, _PrimaryBucket(reset_at=now + PRIMARY_WINDOW_S))
        if now >= bucket.reset_at:
            # GitHub's window is fixed: it starts with the first request after a reset.
            bucket.used = 0
            bucket.reset_at = now + PRIMARY_WINDOW_S
        return bucket

    def refuse_if_exhausted(self, token: str) -> None:
        """403 once the token's primary budget is spent."""
        if self._bucket(token).used >= self.limits.primary_per_hour:
            raise Reject(
                error(403, "API rate limit exceeded for user ID 1.", DOC_RATE),
                "primary_rate_limit",
            )

    def charge(self, token: str | None) -> None:
        """Count one request against the token's primary budget (anonymous ones up to their own limit)."""
        bucket = self._bucket(token)
        if token is None:
            bucket.used = min(bucket.used + 1, ANONYMOUS_LIMIT)
        elif bucket.used < self.limits.primary_per_hour:
            bucket.used += 1

    def headers(self, response: Response, token: str | None) -> None:
        limit = self.limits.primary_per_hour if token is not None else ANONYMOUS_LIMIT
        bucket = self._bucket(token)
        response.headers["x-ratelimit-limit"] = str(limit)
        response.headers["x-ratelimit-remaining"] = str(max(limit - bucket.used, 0))
        response.headers["x-ratelimit-used"] = str(bucket.used)
        response.headers["x-ratelimit-reset"] = str(math.ceil(bucket.reset_at))
        response.headers["x-ratelimit-resource"] = "core"

    def charge_write(self, token: str, method: str) -> None:
        """Enforce the secondary limit on content-creating requests, then count this one."""
        if method not in _CONTENT_CREATING:
            return
        now = self._clock()
        times = self._writes.setdefault(token, deque())
        while times and times[0] <= now - 3600.0:
            times.popleft()
        in_minute = [t for t in times if t > now - 60.0]
        waits = [
            wait_for_room(in_minute, self.limits.secondary_per_minute, 60.0, now),
            wait_for_room(list(times), self.limits.secondary_per_hour, 3600.0, now),
        ]
        if max(waits) > 0:
            retry_after = max(math.ceil(max(waits)), 1)
            raise Reject(
                error(
                    self.limits.secondary_status,
                    "You have exceeded a secondary rate limit and have been temporarily blocked"
                    " from content creation. Please retry your request again later.",
                    DOC_SECONDARY,
                    {"Retry-After": str(retry_after)},
                ),
                "secondary_rate_limit",
            )
        times.append(now)
