"""Reading GitHub's rate-limit signals: the `x-ratelimit-*` headers and the 403/429 answers.

GitHub's rules (docs "Rate limits for the REST API"), in the order applied here:

1. `retry-after` present: wait that many seconds (a secondary limit);
2. `x-ratelimit-remaining: 0`: wait until `x-ratelimit-reset` (the primary limit);
   with both, the longer wait wins;
3. otherwise a 429, or a 403 whose message mentions a secondary rate limit: wait at
   least a minute, longer (exponentially) while the limit keeps being hit;
4. any other 403 is a plain refusal, not a limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

from cmdgate.gist.models import RateLimit

LimitKind = Literal["primary", "secondary"]

_SECONDARY_WORDS = ("secondary rate limit", "abuse")


@dataclass(frozen=True)
class LimitSignal:
    """A 403/429 that is a rate limit: which one, and how long to wait before trying again."""

    kind: LimitKind
    wait_s: float
    from_retry_after: bool


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_rate_limit(headers: Mapping[str, str], wall_now: float) -> RateLimit | None:
    """The primary limit reported by `headers` (case-insensitive mapping), or None without it."""
    remaining = _int(headers.get("x-ratelimit-remaining"))
    reset = _int(headers.get("x-ratelimit-reset"))
    if remaining is None or reset is None:
        return None
    return RateLimit(
        limit=_int(headers.get("x-ratelimit-limit")),
        remaining=remaining,
        used=_int(headers.get("x-ratelimit-used")),
        reset_at=float(reset),
        resource=headers.get("x-ratelimit-resource"),
        observed_at=wall_now,
    )


def retry_after_s(value: str | None, wall_now: float) -> float | None:
    """Seconds asked by a `Retry-After` header (delta-seconds or HTTP-date), None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", value):  # ASCII delta-seconds (str.isdigit() also takes "²")
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - wall_now)


def classify_limit(
    status_code: int,
    headers: Mapping[str, str],
    message: str | None,
    *,
    wall_now: float,
    secondary_strikes: int,
    secondary_floor_s: float,
) -> LimitSignal | None:
    """The rate limit a 403/429 answer reports, or None when it is no rate limit."""
    if status_code not in (403, 429):
        return None
    asked = retry_after_s(headers.get("retry-after"), wall_now)
    primary_exhausted = _int(headers.get("x-ratelimit-remaining")) == 0
    reset = _int(headers.get("x-ratelimit-reset"))
    until_reset = max(0.0, reset - wall_now) if reset is not None else None
    if asked is not None:
        wait = max(asked, until_reset or 0.0) if primary_exhausted else asked
        return LimitSignal("primary" if primary_exhausted else "secondary", wait, from_retry_after=True)
    if primary_exhausted:
        if until_reset is not None:
            return LimitSignal("primary", until_reset, from_retry_after=False)
        return LimitSignal("primary", secondary_floor_s, from_retry_after=False)
    text = (message or "").lower()
    if status_code == 429 or any(word in text for word in _SECONDARY_WORDS):
        # No hint from GitHub: at least the floor, doubled for every consecutive hit.
        wait = secondary_floor_s * (2 ** min(secondary_strikes, 16))
        return LimitSignal("secondary", wait, from_retry_after=False)
    return None
