"""Knobs of the Gist client, with defaults that suit GitHub's documented limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GistClientConfig:
    """Timeouts, retries, write spacing, rate-limit waits and cache sizes of a `GistClient`."""

    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0  # also the write and per-chunk read timeout
    max_attempts: int = 4  # attempts per request on 5xx, timeouts, connect errors, 422 "cannot be updated"
    base_backoff_s: float = 0.5  # full jitter: sleep before retry n is uniform in [0, min(max, base * 2**n))
    max_backoff_s: float = 8.0
    min_attempt_s: float = 1.0  # time one attempt needs: no retry or wait is started without it left
    safety_margin_s: float = 0.5  # kept free before the caller's deadline
    # GitHub asks for at least one second between mutating requests of one token.
    min_write_interval_s: float = 1.0
    # A secondary limit without Retry-After: wait at least this, doubling on each consecutive hit.
    secondary_limit_floor_s: float = 60.0
    # Never sleep longer than this for a rate limit: raise GistRateLimited instead.
    max_rate_limit_wait_s: float = 60.0
    max_rate_limit_waits: int = 3  # rate-limit waits in one call before giving up
    etag_cache_size: int = 256  # gists whose last GET (ETag and parsed body) is kept
    revision_cache_size: int = 64  # immutable revisions kept by (gist id, sha)
    # A truncated file is read from raw_url; refuse to download anything larger.
    max_file_bytes: int = 50 * 1024 * 1024
    # Hosts (besides the API's own) that raw_url may point to; they receive the token.
    raw_hosts: tuple[str, ...] = ("gist.githubusercontent.com",)
    user_agent: str = "cmdgate-gist-client/1.0"

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_attempts < 1 or self.max_rate_limit_waits < 0:
            raise ValueError("max_attempts must be >= 1 and max_rate_limit_waits >= 0")
        durations = (
            self.base_backoff_s,
            self.max_backoff_s,
            self.min_attempt_s,
            self.safety_margin_s,
            self.min_write_interval_s,
            self.secondary_limit_floor_s,
            self.max_rate_limit_wait_s,
        )
        if any(value < 0 for value in durations):
            raise ValueError("durations must not be negative")
        if self.etag_cache_size < 0 or self.revision_cache_size < 0 or self.max_file_bytes < 1:
            raise ValueError("cache sizes must be >= 0 and max_file_bytes >= 1")
