"""Pure figure code of the state benchmark (bench/state_sync.py): no stack, no HTTP, no clock.

Lag percentiles, the hourly steady state the gist write limit allows, the most writes in a
sliding window, dirty gists of a set of registers, files changed by a gist revision, and the
lag of each write from periodic samples of the registers.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# GitHub's secondary limit on content-creating requests per token and hour.
GIST_WRITES_PER_HOUR = 500
# At most this many keys share a gist in the sharded layout (template parameter StateKeysPerGist).
KEYS_PER_GIST = 50
# The steady-mix goal: p95 lag <= dirty gists x 1 s + 5 s.
GOAL_S_PER_DIRTY_GIST = 1.0
GOAL_SLACK_S = 5.0


@dataclass(frozen=True)
class Register:
    """What the benchmark reads of one key's register."""

    version: int
    synced_version: int = 0
    gist_id: str | None = None
    shard: str | None = None  # "<namespace>/<n>" in the sharded layout; None before it (or before assignment)

    @property
    def dirty(self) -> bool:
        return self.synced_version < self.version


def namespace_of(key: str) -> str:
    """The part of a key before its first `.` or `:` (the whole key when it has neither)."""
    cut = min((i for i in (key.find("."), key.find(":")) if i >= 0), default=len(key))
    return key[:cut]


def dirty_gists(registers: Mapping[str, Register], keys_per_gist: int = KEYS_PER_GIST) -> int:
    """Distinct gists holding at least one key whose synced version is behind its version.

    A register with a `shard` attribute names its gist; for the dirty keys without one, each
    namespace counts ceil(its dirty keys / keys_per_gist) gists (the fewest that could hold them).
    """
    shards: set[str] = set()
    unsharded: Counter[str] = Counter()
    for key, register in registers.items():
        if not register.dirty:
            continue
        if register.shard is not None:
            shards.add(register.shard)
        else:
            unsharded[namespace_of(key)] += 1
    return len(shards) + sum(math.ceil(n / keys_per_gist) for n in unsharded.values())


def max_in_window(timestamps: Iterable[float], window_s: float) -> int:
    """The most events inside any window of `window_s` seconds (events `window_s` apart are in two)."""
    ordered, best, start = sorted(timestamps), 0, 0
    for end, ts in enumerate(ordered):
        while ts - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def quantile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks; one sample is its own quantile."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def lag_percentiles(lags: list[float]) -> dict[str, float | int | None]:
    """n, p50, p95 and max of sync lags in seconds (None for each figure when there are none)."""
    if not lags:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(lags),
        "p50": round(quantile(lags, 0.50), 2),
        "p95": round(quantile(lags, 0.95), 2),
        "max": round(max(lags), 2),
    }


def hourly_steady_state(keys_per_write: float, writes_per_hour: int = GIST_WRITES_PER_HOUR) -> float:
    """Key syncs an hour the write limit allows when each gist write carries `keys_per_write` keys."""
    return writes_per_hour * keys_per_write


def lag_goal_s(dirty: float) -> float:
    """The steady-mix p95 lag goal for this many dirty gists."""
    return dirty * GOAL_S_PER_DIRTY_GIST + GOAL_SLACK_S


@dataclass(frozen=True)
class FileSnapshot:
    """One file of a gist revision as the API shows it (content may be cut above 1 MiB)."""

    size: int
    content: str | None


def changed_files(before: Mapping[str, FileSnapshot], after: Mapping[str, FileSnapshot]) -> int:
    """Files a revision added, removed or changed against the revision before it."""
    return sum(1 for name in set(before) | set(after) if before.get(name) != after.get(name))


def mean(values: list[int] | list[float]) -> float | None:
    return statistics.fmean(values) if values else None


@dataclass
class LagTracker:
    """Each write's lag: from its 2xx until a sample of the registers shows its version synced.

    Writers call `wrote` from any thread; the sampler calls `observe` with every register read at
    one time. A sample reads a register at most `interval + scan time` after its sync, so lags are
    upper bounds with that resolution.
    """

    pending: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    lags: list[tuple[float, float]] = field(default_factory=list)  # (written at, lag s)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrote(self, key: str, version: int, at: float) -> None:
        with self.lock:
            self.pending[key].append((version, at))

    def observe(self, registers: Mapping[str, Register], at: float) -> int:
        """Settle every pending write whose version the sample shows synced; returns how many."""
        settled = 0
        with self.lock:
            for key in list(self.pending):
                register = registers.get(key)
                if register is None:
                    continue
                waiting = self.pending[key]
                done = [(version, written) for version, written in waiting if version <= register.synced_version]
                if not done:
                    continue
                self.lags += [(written, max(0.0, at - written)) for _, written in done]
                settled += len(done)
                left = [entry for entry in waiting if entry[0] > register.synced_version]
                if left:
                    self.pending[key] = left
                else:
                    del self.pending[key]
        return settled

    def unsynced(self) -> list[tuple[str, int, float]]:
        with self.lock:
            return [(key, version, at) for key, entries in self.pending.items() for version, at in entries]

    def has_pending(self) -> bool:
        with self.lock:
            return bool(self.pending)


def value_at(samples: list[tuple[float, int]], at: float) -> int:
    """The value of the last sample at or before `at` (the first sample's before any)."""
    if not samples:
        return 0
    best = samples[0][1]
    for ts, value in samples:
        if ts > at:
            break
        best = value
    return best


def within_goal(lags: list[tuple[float, float]], dirty: list[tuple[float, int]]) -> int:
    """Writes whose lag met the goal for the dirty gists sampled when they were written."""
    return sum(1 for written, lag in lags if lag <= lag_goal_s(value_at(dirty, written)))


def rolling_lag(
    lags: list[tuple[float, float]], start: float, window_s: float
) -> list[tuple[float, float, float, float]]:
    """(window middle s since `start`, p50, p95, max) of the lags of writes made in each `window_s` window."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for written, lag in lags:
        buckets[max(0, int((written - start) // window_s))].append(lag)
    return [
        ((index + 0.5) * window_s, quantile(values, 0.5), quantile(values, 0.95), max(values))
        for index, values in sorted(buckets.items())
    ]
