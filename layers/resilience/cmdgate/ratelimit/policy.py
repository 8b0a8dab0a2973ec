"""A rate-limit policy and the decision for one request, rendered as IETF RateLimit fields.

Fields follow draft-ietf-httpapi-ratelimit-headers (-10):

    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=42;t=3

`r` is how many more requests would succeed right now. `t` is when the quota
is next restored: while `r > 0`, the seconds until the bucket is full again
(`r = q`); when `r = 0`, the seconds until the next request can succeed. So on
a refusal `t` is exactly the wait, and `Retry-After` (never earlier than `t`)
equals it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# The longest window a policy may have: bucket items are kept this long past a take (cmdgate.ratelimit.base).
MAX_WINDOW_S = 86_400
# A policy name travels as a Structured Field string; keeping it to plain
# token characters means it never needs escaping in a header or a log.
_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class RateLimitPolicy:
    """At most `quota` requests per `window_s` seconds, with bursts of up to `quota`."""

    quota: int
    window_s: int
    name: str = "default"

    def __post_init__(self) -> None:
        for field_name in ("quota", "window_s"):
            value = getattr(self, field_name)
            # bool is an int subclass; `True` as a quota is a bug, not a limit of 1.
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field_name} must be an integer >= 1")
        if self.window_s > MAX_WINDOW_S:
            raise ValueError(f"window_s must be at most {MAX_WINDOW_S}")
        if not _POLICY_NAME.match(self.name):
            raise ValueError("policy name must be 1-64 characters of [A-Za-z0-9_.:-]")

    def scaled(self, factor: float, name: str) -> RateLimitPolicy:
        """The same window with the quota multiplied by `factor` (rounded down, at least 1)."""
        return RateLimitPolicy(max(1, math.floor(self.quota * factor)), self.window_s, name)

    def header(self) -> str:
        """The `RateLimit-Policy` field value."""
        return f'"{self.name}";q={self.quota};w={self.window_s}'


@dataclass(frozen=True)
class RateLimitDecision:
    """Whether one request may proceed, and what the caller is told about its limit."""

    allowed: bool
    policy: RateLimitPolicy
    remaining: int
    reset_s: int
    retry_after_s: int | None = None

    def __post_init__(self) -> None:
        if self.remaining < 0 or self.reset_s < 0:
            raise ValueError("remaining and reset_s must not be negative")
        if self.allowed and self.retry_after_s is not None:
            raise ValueError("an allowed request has no retry_after_s")
        if not self.allowed and (self.retry_after_s is None or self.retry_after_s < max(1, self.reset_s)):
            # The contract: a 429's Retry-After is never earlier than `t`, and at least 1 s.
            raise ValueError("a refusal needs retry_after_s >= max(1, reset_s)")

    def headers(self) -> dict[str, str]:
        """`RateLimit-Policy` and `RateLimit`, plus `Retry-After` when refused."""
        headers = {
            "RateLimit-Policy": self.policy.header(),
            "RateLimit": f'"{self.policy.name}";r={self.remaining};t={self.reset_s}',
        }
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


@dataclass(frozen=True)
class RateLimitVerdict:
    """The decisions of every policy one request was counted against (the caller's, a command's own).

    It is admitted only if every policy admits it (and then counts against all of them).
    `RateLimit-Policy` lists every policy; `RateLimit` reports the one with the least remaining,
    and `Retry-After` the longest wait of the policies that refused.
    """

    decisions: tuple[RateLimitDecision, ...]

    def __post_init__(self) -> None:
        if not self.decisions:
            raise ValueError("a verdict needs at least one decision")

    @classmethod
    def of(cls, decisions: Sequence[RateLimitDecision]) -> RateLimitVerdict:
        """A verdict over `decisions`."""
        return cls(tuple(decisions))

    @property
    def allowed(self) -> bool:
        """True if every policy admits the request."""
        return all(d.allowed for d in self.decisions)

    @property
    def refused(self) -> tuple[RateLimitDecision, ...]:
        """The decisions of the policies that refused."""
        return tuple(d for d in self.decisions if not d.allowed)

    @property
    def tightest(self) -> RateLimitDecision:
        """The decision with the least remaining (ties: the longest reset)."""
        return min(self.decisions, key=lambda d: (d.remaining, -d.reset_s))

    @property
    def retry_after_s(self) -> int | None:
        """When to retry, if refused: the longest wait of the refusing policies."""
        waits = [d.retry_after_s for d in self.refused if d.retry_after_s is not None]
        return max(waits) if waits else None

    def headers(self) -> dict[str, str]:
        """`RateLimit-Policy` (every policy), `RateLimit` (the tightest), `Retry-After` when refused."""
        tightest = self.tightest
        headers = {
            "RateLimit-Policy": ", ".join(d.policy.header() for d in self.decisions),
            "RateLimit": f'"{tightest.policy.name}";r={tightest.remaining};t={tightest.reset_s}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers
