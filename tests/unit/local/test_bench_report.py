"""`make bench`'s pure parts: figures as ratios to a same-run baseline, the tables, the markers, the runner's docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import async_drain, run, state_sync, suite
from bench.report import (
    Figure,
    RunInfo,
    figure_table,
    headline,
    join_notes,
    marked,
    markers,
    number,
    read_marked,
    replace_marked,
    slug,
)


def figure(value: float | None, baseline: float | None, **goal: Any) -> Figure:
    return Figure("b", "f", value, "ms", "base", baseline, "how", **goal)


def test_ratio_is_value_over_the_same_runs_baseline() -> None:
    assert figure(150.0, 100.0).ratio == pytest.approx(1.5)
    assert figure(None, 100.0).ratio is None
    assert figure(1.0, 0.0).ratio is None  # no baseline to divide by
    assert figure(1.0, None).ratio is None


def test_goal_is_met_against_the_ratio_not_the_value() -> None:
    assert figure(120.0, 100.0, goal_max=1.3).met is True
    assert figure(140.0, 100.0, goal_max=1.3).met is False
    assert figure(0.7, 1.0, goal_min=0.8).met is False
    assert figure(0.8, 1.0, goal_min=0.8).met is True
    assert figure(5.0, 1.0).met is None  # no goal set
    assert figure(None, 1.0, goal_max=1.0).met is None
    assert figure(1.0, 1.0, goal_max=1.3).goal == "<= 1.3x"
    assert figure(1.0, 1.0, goal_min=0.8).goal == ">= 0.8x"
    assert figure(1.0, 1.0).goal == "-"


def test_a_lower_bound_can_miss_a_ceiling_but_never_meet_it() -> None:
    # Not all synced when the poll stopped at 30 s: 30 s is a lower bound, and says nothing against 60 s.
    assert figure(30.0, 60.0, goal_max=1.0, lower_bound=True).met is None
    assert figure(90.0, 60.0, goal_max=1.0, lower_bound=True).met is False
    assert figure(90.0, 60.0, goal_min=1.0, lower_bound=True).met is True


def test_numbers_keep_three_significant_digits_with_their_unit() -> None:
    assert number(1234.5, "ms") == "1,234 ms"  # banker's rounding of .5 is not at stake: 1234.5 -> 1,234
    assert number(12.345, "s") == "12.3 s"
    assert number(1.2345) == "1.23"
    assert number(0.0, "x") == "0 x"
    assert number(40.0) == "40"  # a count stays a count
    assert number(None, "ms") == "-"


def test_figure_table_has_one_row_per_figure_with_ratio_goal_and_verdict() -> None:
    lines = figure_table(
        [
            Figure("command path", "p95 | front", 150.0, "ms", "bare p95", 100.0, "200 echo", goal_max=1.3),
            Figure("state", "lag", 30.0, "s", "bound", 60.0, "polled", goal_max=1.0, lower_bound=True),
        ]
    )
    assert lines[0].startswith("| benchmark | figure | value | baseline (same run) | ratio | goal | met |")
    assert len(lines) == 4
    assert lines[2] == (
        "| command path | p95 \\| front | 150 ms | bare p95: 100 ms | 1.50x | <= 1.3x | **missed** | 200 echo |"
    )
    assert "| > 30 s | bound: 60 s | > 0.50x | <= 1x | - |" in lines[3]


def test_headline_names_date_machine_load_commit_and_wall_time() -> None:
    info = RunInfo(
        date="2026-12-01 20:00",
        machine="Linux x86_64, 2 CPUs",
        load=((1.5, 2.0, 2.5), (3.0, 3.5, 4.0)),
        commit="abc1234",
        command='make bench ARGS="--quick"',
        wall_s=151.4,
        notes=("quick run",),
    )
    text = headline(info, [figure(2.0, 1.0, goal_max=1.3)])
    assert text.startswith("## Headline\n")
    for part in (
        "2026-12-01 20:00 UTC",
        "commit abc1234",
        "Linux x86_64, 2 CPUs",
        "1.50 / 2.00 / 2.50 at the start, 3.00 / 3.50 / 4.00 at the end",
        "wall time 2 min 31 s",
        "- quick run",
        "| 2.00x | <= 1.3x | **missed** |",
    ):
        assert part in text


def test_slug_and_markers() -> None:
    assert slug("## State: write-behind gist sync") == "state-write-behind-gist-sync"
    assert markers("headline") == ("<!-- bench:headline -->", "<!-- /bench:headline -->")
    with pytest.raises(ValueError):
        markers("Not A Name")
    with pytest.raises(ValueError):
        slug("## ::")


def test_replace_marked_rewrites_only_its_own_section() -> None:
    healer = "\n## Healer\n\nby hand\n\n"
    text = "# Benchmarks\n\nintro\n\n" + marked("a", "## A\n\nold a") + healer + marked("b", "## B\n\nb")
    out = replace_marked(text, "a", "## A\n\nnew a\n")
    assert read_marked(out, "a") == "## A\n\nnew a"
    assert read_marked(out, "b") == "## B\n\nb"
    assert "intro" in out and "## Healer\n\nby hand" in out
    assert "old a" not in out
    assert replace_marked(out, "a", "## A\n\nnew a\n") == out  # idempotent


def test_replace_marked_takes_over_an_unmarked_section_of_the_same_title() -> None:
    text = "# Benchmarks\n\n## Command path\n\nold table\n- old\n## Healer\n\nby hand\n"
    out = replace_marked(text, "command-path", "## Command path\n\nnew table")
    assert "old table" not in out
    assert read_marked(out, "command-path") == "## Command path\n\nnew table"
    assert out.endswith("<!-- /bench:command-path -->\n\n## Healer\n\nby hand\n")


def test_replace_marked_appends_a_new_section_and_puts_the_headline_first() -> None:
    text = "# Benchmarks\n\n## Healer\n\nby hand\n"
    out = replace_marked(text, "new", "## New\n\nfigures")
    assert out.index("## Healer") < out.index("<!-- bench:new -->")
    out = replace_marked(out, "headline", "## Headline\n\ntable", first=True)
    assert out.startswith(
        "# Benchmarks\n\n<!-- bench:headline -->\n## Headline\n\ntable\n<!-- /bench:headline -->\n\n## Healer"
    )
    assert replace_marked("", "x", "## X") == "# Benchmarks\n\n<!-- bench:x -->\n## X\n<!-- /bench:x -->\n"


def test_a_marker_left_open_is_an_error_not_a_lost_document() -> None:
    with pytest.raises(ValueError):
        replace_marked("<!-- bench:a -->\n## A\n", "a", "## A\n\nnew")
    with pytest.raises(ValueError):
        read_marked("<!-- bench:a -->\n", "a")
    assert read_marked("# Benchmarks\n", "a") is None


def test_join_notes_drops_blanks_and_repeats() -> None:
    assert join_notes(["a", "", " b ", "a", "  "]) == ("a", "b")


def command_figures() -> dict[str, Any]:
    row = {"n": 10, "p50": 10.0, "p95": 20.0, "p99": 30.0, "mean": 12.0, "rps": 50.0, "latencies": [10.0, 20.0]}
    bare = {**row, "p95": 10.0, "rps": 60.0}
    return {
        "requests": 10,
        "pool": 4,
        "latency": {
            run.FRONT: {1: row, 8: {**row, "rps": 80.0}, 32: {**row, "rps": 72.0}},
            run.API_DIRECT: {1: row, 8: row},
            run.BARE_DIRECT: {1: bare, 8: bare},
        },
        "dynamodb_calls": {4: 9, 6: 1},
    }


def test_command_path_figures_are_ratios_to_the_bare_handler_and_to_fewer_clients() -> None:
    figures = {f.name: f for f in run.headline(command_figures())}
    assert figures["echo p95 through the front, 8 client(s)"].ratio == pytest.approx(2.0)
    assert "echo p95 through the front, 32 client(s)" not in figures  # no bare handler at 32 clients
    scaling = figures["echo req/s through the front, 32 clients"]
    assert (scaling.value, scaling.baseline) == (72.0, 80.0)  # against 8 clients, the next fewer
    assert figures["layer cost: api function p95, direct, 1 client(s)"].ratio == pytest.approx(2.0)
    calls = figures["DynamoDB calls per echo (api function)"]
    assert calls.value == pytest.approx(4.2) and calls.baseline == run.BARE_DYNAMODB_CALLS


def test_async_figures_are_against_the_ceiling_and_the_mix_size() -> None:
    figures = {
        "moto_rate": 100.0,
        "drain": {"n": 40, "rate": 6.0, "calls_per_execution": 10.0},
        "outcomes": {"n": 40, "effects_once": 39, "lost": 0, "wrong_count": 1},
    }
    drain, once, lost = async_drain.headline(figures)
    assert drain.baseline == pytest.approx(10.0) and drain.ratio == pytest.approx(0.6) and drain.met is False
    assert once.ratio == pytest.approx(39 / 40) and once.met is False
    assert lost.value == 1 and lost.met is False


def test_state_figures_say_when_not_every_key_synced() -> None:
    args = state_sync.parse(["--quick", "--only", "many"])
    many = {"keys": 40, "namespaces": 4, "all_synced": False, "to_all_synced_s": None, "polled_s": 30.5, "synced": 12}
    (synced,) = state_sync.headline({"args": args, "hot": None, "many": many, "mix": None})
    assert synced.lower_bound and synced.value == 30.5 and synced.baseline == state_sync.MANY_GOAL_S
    assert "12 synced" in synced.how
    many |= {"all_synced": True, "to_all_synced_s": 75.0}
    (synced,) = state_sync.headline({"args": args, "hot": None, "many": many, "mix": None})
    assert not synced.lower_bound and synced.met is False


def test_suite_writes_headline_and_sections_and_keeps_the_rest(tmp_path: Path) -> None:
    results = tmp_path / "benchmarks.md"
    results.write_text("# Benchmarks\n\n## Command path: sync idempotent echo\n\nold\n\n## Healer\n\nby hand\n")
    info = RunInfo("2026-12-01 20:00", "m", ((1.0, 1.0, 1.0), (2.0, 2.0, 2.0)), "abc", "make bench", 10.0)
    done = suite.Outcome("command", run.SECTION, section=f"{run.SECTION}\n\nnew", figures=[figure(2.0, 1.0)])
    broken = suite.Outcome("async", async_drain.SECTION, failed="RuntimeError: boom")
    wrote: list[str] = []
    done.extra = lambda: wrote.append("csv")
    suite.write_docs(results, info, [done, broken])
    text = results.read_text()
    assert text.index("<!-- bench:headline -->") < text.index("<!-- bench:command-path-sync-idempotent-echo -->")
    assert "\nold\n" not in text and "\nnew\n" in text
    assert "## Healer\n\nby hand" in text
    assert "Async commands" not in text  # a failed benchmark writes no section
    assert wrote == ["csv"]
    assert "| b | f | 2 ms | base: 1 ms | 2.00x |" in text


def test_suite_notes_name_failures_and_skips() -> None:
    ok = suite.Outcome("command", run.SECTION, section="## x", seconds=12.0)
    broken = suite.Outcome("state", state_sync.SECTION, failed="RuntimeError: boom", seconds=3.0)
    notes = suite.notes([ok, broken], ["cold starts: skipped"], quick=True)
    assert notes[0].startswith("quick run")
    assert "time per benchmark: command 12 s, state 3 s" in notes
    assert "cold starts: skipped" in notes
    assert any(n.startswith("state: FAILED (RuntimeError: boom)") for n in notes)


def test_suite_options() -> None:
    assert suite.parse([]).benchmarks == list(suite.BENCHMARKS)
    assert suite.parse(["--only", "state", "--only", "command"]).benchmarks == ["command", "state"]
    assert suite.QUICK.requests < suite.FULL.requests and suite.QUICK.async_n < suite.FULL.async_n
    quick_state = state_sync.parse(list(suite.QUICK.state_args))
    assert quick_state.keys == 30 and quick_state.mix_seconds == 5


def test_a_benchmark_that_raises_is_kept_as_failed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(ctx: suite.Context, outcome: suite.Outcome) -> None:
        raise RuntimeError("moto went away")

    monkeypatch.setitem(suite.RUNNERS, "command", (run.SECTION, boom))
    ctx = suite.Context(None, tmp_path, suite.QUICK, True, "make bench", tmp_path, False, print)
    outcome = suite.run_one("command", ctx)
    assert outcome.failed == "RuntimeError: moto went away" and outcome.section == ""


class Kept:
    """Keeps the figures the plot functions hand over instead of writing PNGs."""

    def __init__(self) -> None:
        self.saved: list[tuple[Any, Path]] = []

    def __call__(self, figure: Any, path: Path) -> None:
        self.saved.append((figure, path))


def test_command_and_async_plots_draw_their_series() -> None:
    pytest.importorskip("matplotlib")  # requirements/bench.txt; the Makefile's bench targets install it
    from bench import plots

    kept = Kept()
    plots.latency_histograms({1: [10.0, 12.0, 30.0], 8: [50.0, 60.0], 32: [100.0, 300.0]}, Path("h.png"), save=kept)
    plots.layer_cost(
        {1: {"p50": 20.0, "p95": 30.0, "p99": 40.0}},
        {1: {"p50": 10.0, "p95": 15.0, "p99": 20.0}},
        Path("l.png"),
        save=kept,
    )
    plots.async_drain([0.1, 0.2, 0.3], [1.0, 2.0, 2.5], 2.0, Path("a.png"), save=kept)
    histograms, layer, drain = (figure for figure, _ in kept.saved)
    assert [axes.get_title() for axes in histograms.axes] == [
        "1 client(s), 3 requests",
        "8 client(s), 2 requests",
        "32 client(s), 2 requests",
    ]
    assert sum(patch.get_height() for patch in histograms.axes[0].patches) == 3
    (bars,) = layer.axes
    heights = [patch.get_height() for patch in bars.patches]
    assert heights == [20.0, 30.0, 40.0, 10.0, 15.0, 20.0]  # api function's bars, then the bare handler's
    assert [text.get_text() for text in bars.texts] == ["x2.00", "x2.00", "x2.00"]
    (axes,) = drain.axes
    submitted, ended, ceiling = axes.lines
    assert list(submitted.get_ydata()) == [1, 2, 3]
    assert list(ended.get_xdata()) == [1.0, 2.0, 2.5] and list(ended.get_ydata()) == [1, 2, 3]
    assert list(ceiling.get_ydata()) == [0.0, 5.0]  # 2/s over the 2.5 s the plot spans


def cold_start_module(rendered: list[str]) -> Any:
    """A stand-in for bench/cold_start.py with its interface: measure, plot, render between its own markers."""
    import types

    figures = {
        "cold_starts": 3,
        "medians": {"floor": {"total_ms": 400.0}, "ApiFunction": {"total_ms": 600.0}},
        "front": {"cold_ms": 2500.0, "warm_ms": 100.0},
        "layer": {"mib": 30.0, "budget_mib": 35.0},
    }

    def render(f: dict[str, Any], plots: list[Path] | None = None) -> str:
        rendered.append("render")
        return "<!-- cold:start -->\n## Cold starts: init\n\ntable\n<!-- cold:end -->"

    return types.SimpleNamespace(
        measure=lambda quick, progress=None: figures,
        plot=lambda f, out: [],
        render=render,
        START_MARK="<!-- cold:start -->",
        END_MARK="<!-- cold:end -->",
        FLOOR="floor",
        SHORT={"ApiFunction": "api"},
        GOAL=1.3,
    )


def test_cold_starts_keep_their_own_markers_and_give_ratio_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rendered: list[str] = []
    monkeypatch.setattr(suite, "cold_module", lambda: cold_start_module(rendered))
    ctx = suite.Context(None, tmp_path, suite.QUICK, True, "make bench", tmp_path, False, print)
    outcome = suite.run_one("cold", ctx)
    assert outcome.failed is None and rendered == ["render"]
    assert outcome.title == "## Cold starts: init"
    assert outcome.marks == ("<!-- cold:start -->", "<!-- cold:end -->")
    api, front, layer = outcome.figures
    assert (api.name, api.ratio, api.met) == ("api: init + first invocation", pytest.approx(1.5), False)
    assert front.ratio == pytest.approx(25.0) and front.met is None
    assert layer.met is True
    # Written between the module's own markers: its own `--write-docs` finds the same block again.
    results = tmp_path / "benchmarks.md"
    results.write_text("# Benchmarks\n\n<!-- cold:start -->\n## Cold starts: init\n\nold\n<!-- cold:end -->\n")
    info = RunInfo("2026-12-01 20:00", "m", ((1.0, 1.0, 1.0), (2.0, 2.0, 2.0)), "abc", "make bench", 10.0)
    suite.write_docs(results, info, [outcome])
    text = results.read_text()
    assert text.count("<!-- cold:start -->") == 1 and text.count("## Cold starts: init") == 1
    assert "\ntable\n<!-- cold:end -->" in text and "\nold\n" not in text


def test_a_quick_run_writes_its_own_file_and_keeps_its_plots_out_of_the_docs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Small sizes must never overwrite the full run's sections or PNGs."""
    full, quick = tmp_path / "benchmarks.md", tmp_path / "benchmarks-quick.md"
    full.write_text("# Benchmarks\n\nthe full run\n")
    seen: list[Path] = []

    def drawn(ctx: suite.Context, outcome: suite.Outcome) -> None:
        seen.append(ctx.images)
        outcome.section = f"{suite.COLD_SECTION}\n\nquick figures\n"

    monkeypatch.setattr(run, "RESULTS", full)
    monkeypatch.setattr(suite, "QUICK_RESULTS", quick)
    monkeypatch.setattr(suite, "cold_start_available", lambda: True)
    monkeypatch.setitem(suite.RUNNERS, "cold", (suite.COLD_SECTION, drawn))
    assert suite.main(["--quick", "--only", "cold"]) == 0
    assert full.read_text() == "# Benchmarks\n\nthe full run\n"
    assert "quick figures" in quick.read_text() and "quick run" in quick.read_text()
    assert seen and seen[0].resolve() != run.IMAGES.resolve()


def test_a_quick_run_quotes_the_full_run_s_own_headline(tmp_path: Path) -> None:
    results = tmp_path / "benchmarks.md"
    assert "has not written benchmarks.md yet" in suite.full_run_note(results)
    results.write_text(
        "# Benchmarks\n\n## Headline\n\n- date: 2026-12-02 03:09 UTC; commit d8f6709\n- machine: x\n"
        "- command: `make bench`, wall time 17 min 18 s\n- full run\n"
        "- time per benchmark: command 133 s, async 323 s\n\n| a | b |\n"
    )
    note = suite.full_run_note(results)
    assert note == (
        "the full run (benchmarks.md): date: 2026-12-02 03:09 UTC; commit d8f6709; "
        "command: `make bench`, wall time 17 min 18 s; time per benchmark: command 133 s, async 323 s"
    )
