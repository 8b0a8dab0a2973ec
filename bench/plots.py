"""PNG plots of the command path and async benchmarks (matplotlib, Agg backend), beside bench/state_plots.py.

Like the state plots, each function builds one figure and hands it to `save` (default: write a
PNG at 100 dpi), so the drawing is testable without the disk; matplotlib is imported only when
a plot is drawn (requirements/bench.txt, installed by the Makefile's bench targets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.state_figures import quantile
from bench.state_plots import Save, new_figure, write_png

COMMAND_LATENCY_PNG = "command-latency.png"
LAYER_COST_PNG = "command-layer-cost.png"
ASYNC_DRAIN_PNG = "async-drain.png"
PERCENTILES = ("p50", "p95", "p99")


def latency_histograms(samples_ms: Mapping[int, Sequence[float]], path: Path, save: Save = write_png) -> None:
    """One histogram per client count (stacked, shared latency axis), p50 and p95 marked."""
    figure, axes = new_figure(rows=len(samples_ms))
    top = max((max(s) for s in samples_ms.values() if s), default=1.0)
    bins = [top * i / 40 for i in range(41)]
    for each, (clients, samples) in zip(axes, samples_ms.items(), strict=True):
        each.hist(list(samples), bins=bins, color="tab:blue")
        for q, color in ((0.5, "tab:green"), (0.95, "tab:red")):
            value = quantile(list(samples), q)
            each.axvline(value, color=color, linestyle="--", label=f"p{round(q * 100)} {value:.0f} ms")
        each.set_ylabel("requests")
        each.set_title(f"{clients} client(s), {len(samples)} requests", fontsize="small")
        each.legend(fontsize="small", loc="upper right")
    axes[-1].set_xlabel("sync echo latency through the API front (ms)")
    figure.suptitle("Command path: sync idempotent echo")
    save(figure, path)


def layer_cost(
    api: Mapping[int, Mapping[str, float]],
    bare: Mapping[int, Mapping[str, float]],
    path: Path,
    save: Save = write_png,
) -> None:
    """Grouped bars: the api function's p50/p95/p99 beside the bare handler's, per client count."""
    figure, (axes,) = new_figure()
    groups = [(c, p) for c in api for p in PERCENTILES]
    xs = list(range(len(groups)))
    width = 0.4
    axes.bar([x - width / 2 for x in xs], [api[c][p] for c, p in groups], width, label="api function", color="tab:blue")
    axes.bar([x + width / 2 for x in xs], [bare[c][p] for c, p in groups], width, label="bare handler", color="grey")
    for x, (c, p) in zip(xs, groups, strict=True):
        ratio = api[c][p] / bare[c][p] if bare[c][p] else 0.0
        axes.annotate(f"x{ratio:.2f}", (x, max(api[c][p], bare[c][p])), ha="center", va="bottom", fontsize="small")
    axes.set_xticks(xs, [f"{p}\n{c} client(s)" for c, p in groups])
    axes.set_ylabel("latency (ms)")
    axes.legend(fontsize="small")
    axes.set_title("Layer cost: api function vs a bare handler making the same AWS calls (direct invokes)")
    save(figure, path)


def async_drain(
    submitted_s: Sequence[float],
    finished_s: Sequence[float],
    ceiling_per_s: float,
    path: Path,
    save: Save = write_png,
) -> None:
    """Executions submitted and ended over time since the first submission, beside the ceiling's slope."""
    figure, (axes,) = new_figure()
    for series, label, color in ((submitted_s, "submitted (202)", "tab:orange"), (finished_s, "ended", "tab:blue")):
        ordered = sorted(series)
        axes.step(ordered, range(1, len(ordered) + 1), where="post", label=label, color=color)
    end = max([*finished_s, *submitted_s, 1.0])
    label = f"ceiling {ceiling_per_s:.1f}/s"
    axes.plot([0.0, end], [0.0, ceiling_per_s * end], linestyle="--", color="tab:red", label=label)
    axes.set_ylim(0, max(len(finished_s), len(submitted_s)) * 1.1 + 1)
    axes.set_xlabel("seconds since the first submission")
    axes.set_ylabel("executions (cumulative)")
    axes.legend(fontsize="small", loc="upper left")
    axes.set_title(f"Async drain: {len(finished_s)} async echo")
    save(figure, path)
