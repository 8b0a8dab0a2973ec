"""Knobs of adaptive tightening, with defaults for an API serving people and scripts."""

from __future__ import annotations

from dataclasses import dataclass, field

# What a well-behaved client rarely sees: bad credentials, missing permission,
# invalid parameters, and ignoring an earlier 429.
DEFAULT_REFUSED_STATUSES = frozenset({401, 403, 422, 429})


@dataclass(frozen=True)
class AdaptiveConfig:
    """When a principal's limit is tightened, by how much, and for how long."""

    window_s: int = 60  # sliding window of outcomes (two fixed sub-windows, the older one weighted)
    min_requests: int = 20  # fewer outcomes than this in the window never tighten
    refused_ratio: float = 0.5  # tightened when refused / requests is over this
    tighten_factor: float = 0.25  # the tightened quota is the base quota times this (at least 1)
    cooldown_s: int = 300  # a tightening lasts at least this long
    refresh_s: float = 10.0  # an instance re-reads a principal's outcomes when its copy is older
    refused_statuses: frozenset[int] = field(default=DEFAULT_REFUSED_STATUSES)
    policy_name: str = "tightened"
    # Successful requests are counted in batches of this many (or this old): one write per batch.
    success_batch: int = 20
    success_batch_s: float = 10.0

    def __post_init__(self) -> None:
        if self.window_s < 1 or self.min_requests < 1 or self.cooldown_s < 0:
            raise ValueError("window_s and min_requests must be >= 1, cooldown_s >= 0")
        if not 0 <= self.refused_ratio < 1:
            raise ValueError("refused_ratio must be in [0, 1)")
        if not 0 < self.tighten_factor <= 1:
            raise ValueError("tighten_factor must be in (0, 1]")
        if self.refresh_s < 0:
            raise ValueError("refresh_s must not be negative")
