"""PNG plots of the state benchmark (matplotlib, Agg backend: no display).

matplotlib is a benchmark-only dependency (requirements/bench.txt, installed by `make bench-state`),
so it is imported only when a plot is drawn. Each function builds one figure and hands it to
`save` (default: write a PNG), so the drawing can be tested without touching the disk.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.state_figures import lag_goal_s, quantile, rolling_lag

# The files docs/benchmarks.md's state section shows (under docs/img/).
MANY_KEYS_PNG = "state-many-keys.png"
MIX_PNG = "state-steady-mix.png"
HOT_KEY_PNG = "state-hot-key-latency.png"

Save = Callable[[Any, Path], None]


def available() -> bool:
    """Whether matplotlib is installed (`make bench-state` installs requirements/bench.txt)."""
    return importlib.util.find_spec("matplotlib") is not None


def new_figure(rows: int = 1) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5 if rows == 1 else 6), dpi=100, layout="constrained")
    first = figure.add_subplot(rows, 1, 1)
    axes = [first] + [figure.add_subplot(rows, 1, i, sharex=first) for i in range(2, rows + 1)]
    return figure, axes


def write_png(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def many_keys(
    series: list[tuple[float, int]],
    writes: list[float],
    keys: int,
    last_write_s: float,
    path: Path,
    save: Save = write_png,
) -> None:
    """Keys synced and cumulative gist writes over seconds since the first PUT.

    `series` is (s, keys synced) per poll; `writes` the gist writes' times in the same seconds.
    """
    figure, (axes,) = new_figure()
    axes.plot([t for t, _ in series], [n for _, n in series], color="tab:blue", label="keys synced")
    axes.axhline(keys, color="tab:blue", linestyle=":", linewidth=1, label=f"all {keys} keys")
    axes.axvline(last_write_s, color="grey", linestyle="--", linewidth=1, label="last PUT")
    axes.axvline(last_write_s + 60, color="tab:red", linestyle="--", linewidth=1, label="goal: last PUT + 60 s")
    axes.set_xlabel("seconds since the first PUT")
    axes.set_ylabel("keys synced")
    axes.set_ylim(bottom=0)
    right = axes.twinx()
    ordered = sorted(writes)
    right.step(ordered, range(1, len(ordered) + 1), where="post", color="tab:orange", label="gist writes (cumulative)")
    right.set_ylabel("gist writes (cumulative)")
    right.set_ylim(bottom=0)
    lines = axes.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    axes.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize="small")
    axes.set_title(f"Many keys: {keys} new keys written once")
    save(figure, path)


def steady_mix(
    lags: list[tuple[float, float]],
    dirty: list[tuple[float, int]],
    start: float,
    seconds: float,
    path: Path,
    window_s: float = 10.0,
    save: Save = write_png,
) -> None:
    """Sync lag p50/p95/max of the writes of each window, against the dirty gists sampled over time.

    `lags` is (written at, lag s), `dirty` is (sampled at, dirty gists), both in the clock of `start`.
    """
    figure, (axes, below) = new_figure(rows=2)
    rows = rolling_lag(lags, start, window_s)
    xs = [row[0] for row in rows]
    axes.plot(xs, [row[1] for row in rows], marker=".", color="tab:blue", label=f"lag p50 ({window_s:.0f} s windows)")
    axes.plot(xs, [row[2] for row in rows], marker=".", color="tab:purple", label="lag p95")
    axes.plot(xs, [row[3] for row in rows], linestyle=":", color="tab:purple", label="lag max")
    times = [t - start for t, _ in dirty]
    goal = [lag_goal_s(n) for _, n in dirty]
    axes.step(times, goal, where="post", color="tab:red", linewidth=1, label="goal: dirty gists x 1 s + 5 s")
    axes.set_ylabel("sync lag (s), by write time")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left", fontsize="small")
    axes.set_title("Steady mix: sync lag against dirty gists")
    below.step(times, [n for _, n in dirty], where="post", color="tab:orange", label="dirty gists (sampled)")
    below.set_ylabel("dirty gists")
    below.set_ylim(bottom=0)
    below.set_xlabel("seconds since the mix started")
    for each in (axes, below):
        each.axvline(seconds, color="grey", linestyle="--", linewidth=1, label="writes stop")
    below.legend(loc="upper left", fontsize="small")
    save(figure, path)


def hot_key(latencies_ms: list[float], clients: int, path: Path, save: Save = write_png) -> None:
    """Histogram of the hot key's PATCH latencies, with p50 and p95 marked."""
    figure, (axes,) = new_figure()
    axes.hist(latencies_ms, bins=40, color="tab:blue")
    for q, color in ((0.5, "tab:green"), (0.95, "tab:red")):
        value = quantile(latencies_ms, q)
        axes.axvline(value, color=color, linestyle="--", label=f"p{round(q * 100)} {value:.0f} ms")
    axes.set_xlabel("PATCH latency (ms)")
    axes.set_ylabel("answers")
    axes.legend(fontsize="small")
    axes.set_title(f"Hot key: {clients} clients PATCH one key ({len(latencies_ms)} answers)")
    save(figure, path)
