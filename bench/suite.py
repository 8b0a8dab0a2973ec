"""`make bench`: every benchmark against one freshly started local stack, then docs/benchmarks.md and its plots.

    make bench                         # the full sizes of every benchmark
    make bench ARGS="--quick"          # small sizes (goal: under 3 minutes on 2 cores)
    make bench ARGS="--only command"   # some benchmarks alone (repeat; command, async, state, cold)
    make bench ARGS="--no-docs"        # print only

One stack is started (the state benchmark's parameters, one pool size for every function) and the
benchmarks run on it in turn under a rich progress bar: the command path (bench/run.py), async
commands (bench/async_drain.py), state and gist sync (bench/state_sync.py). Cold starts
(bench/cold_start.py, when the module exists) start environments of their own, after the stack is
stopped, so its processes do not share the CPU with them. Each benchmark's module keeps its own
`make` target and its own stack (`make bench-command`, `bench-async`, `bench-state`).

Every figure is a ratio to a baseline measured in the same run (bench/report.py `Figure`): the
machine is shared and noisy, so absolute values move between runs and the ratios carry the goals.
The docs get a headline table (date, machine, load average, commit, every figure) and each
benchmark's section between its markers, and the PNGs go to docs/img/. A `--quick` run writes
docs/benchmarks-quick.md instead, figures only (its plots are drawn in a temporary folder and not
kept): its small sizes must never overwrite the full run's sections, plots or CSV.

bench/cold_start.py is used through `measure(quick: bool, progress=None) -> dict` and
`plot(figures, out_dir) -> list[Path]`, and, when it has them, `render(figures, plots) -> str` (its
section with its `## ` title, between its own START_MARK and END_MARK when it defines them: the
section stays between those, so `make bench-cold --write-docs` and `make bench` rewrite the same
block), `headline(figures) -> list[Figure]` (else the headline reads its medians against its floor,
`cold_figures`) and `SECTION` (the title).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import async_drain, run, state_plots, state_sync
from bench.report import HEADLINE, Figure, RunInfo, Tick, headline, join_notes, replace_marked, slug
from cmdgate_local.launcher import ROOT, RunningStack, launch

BENCHMARKS = ("command", "async", "state", "cold")
COLD_START = "bench.cold_start"
COLD_SECTION = "## Cold starts: Init Duration per function against the floor"
QUICK_GOAL_S = 180.0
QUICK_RESULTS = run.RESULTS.parent / "benchmarks-quick.md"
FULL_RUN_FACTS = ("- date: ", "- command: `make bench`", "- time per benchmark: ")


def full_run_note(results: Path = run.RESULTS) -> str:
    """What a quick run's headline says of the full run: its date, wall time and parts, read from the
    full run's own headline in `results` (so the note never goes stale)."""
    text = results.read_text() if results.exists() else ""
    facts = [line.removeprefix("- ") for line in text.splitlines() if line.startswith(FULL_RUN_FACTS)]
    if len(facts) < len(FULL_RUN_FACTS):
        return f"the full run (`make bench`) has not written {results.name} yet"
    return f"the full run ({results.name}): " + "; ".join(facts[: len(FULL_RUN_FACTS)])


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does: `--quick` or the full run."""

    requests: int  # command path: requests per client count and path
    pool: int  # environments per function
    async_n: int  # async: executions per phase
    state_args: tuple[str, ...]  # state: bench.state_sync's own flags


FULL = Sizes(requests=200, pool=8, async_n=1000, state_args=())
# Small enough for under 3 minutes on 2 shared cores: 2 environments per function keep the stack's
# start and the warm-ups short (each environment's first call is a cold start of a second or more).
QUICK = Sizes(
    requests=20,
    pool=2,
    async_n=20,
    state_args=(
        "--quick",
        "--seconds=3",
        "--bursts=1",
        "--burst-size=5",
        "--keys=30",
        "--namespaces=3",
        "--sync-bound=25",
        "--mix-seconds=5",
        "--mix-clients=4",
        "--mix-keys=30",
        "--mix-drain=12",
    ),
)


@dataclass
class Outcome:
    """What one benchmark gave: its section of the docs, its figures and plots, or why it failed."""

    name: str
    title: str
    section: str = ""
    figures: list[Figure] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    failed: str | None = None
    seconds: float = 0.0
    extra: Callable[[], None] | None = None  # more to write with the docs (the state CSV)
    marks: tuple[str, str] | None = None  # the module's own section markers, when it has them


@dataclass
class Context:
    """What a benchmark gets: the running stack, a work folder, the sizes, where plots go, the progress tick."""

    stack: RunningStack | None
    workdir: Path
    sizes: Sizes
    quick: bool
    command: str
    images: Path
    plots: bool
    tick: Tick


def command_path(ctx: Context, outcome: Outcome) -> None:
    assert ctx.stack is not None
    figures = run.measure(
        ctx.stack, ctx.workdir, requests=ctx.sizes.requests, pool_size=ctx.sizes.pool, progress=ctx.tick
    )
    outcome.images = run.plot(figures, ctx.images) if ctx.plots else []
    outcome.figures = run.headline(figures)
    outcome.section = run.render(figures, outcome.images, command=ctx.command)


def async_commands(ctx: Context, outcome: Outcome) -> None:
    assert ctx.stack is not None
    figures = async_drain.measure(ctx.stack, ctx.sizes.async_n, ctx.sizes.pool, progress=ctx.tick)
    outcome.images = async_drain.plot(figures, ctx.images) if ctx.plots else []
    outcome.figures = async_drain.headline(figures)
    outcome.section = async_drain.render(figures, outcome.images, command=ctx.command)
    if figures["outcomes"]["wrong_count"]:
        outcome.failed = f"{figures['outcomes']['wrong_count']} executions of the failing mix not as expected"


def state(ctx: Context, outcome: Outcome) -> None:
    assert ctx.stack is not None
    args = state_sync.parse(list(ctx.sizes.state_args))
    args.command = ctx.command
    args.stack_note = f"; on the shared stack of the run, {ctx.sizes.pool} environments per function"
    figures = state_sync.run_scenarios(ctx.stack, args, progress=ctx.tick)
    figures["plots"] = state_sync.draw(figures, ctx.images) if ctx.plots else {}
    outcome.images = list(figures["plots"].values())
    outcome.figures = state_sync.headline(figures)
    outcome.section = state_sync.render(figures)
    many = figures["many"]
    if many is not None and ctx.images.resolve() == state_sync.IMAGES.resolve():
        outcome.extra = lambda: state_sync.write_series(many)


def cold_module() -> Any:
    """bench/cold_start.py (imported only when it runs: it may not exist in this checkout)."""
    return importlib.import_module(COLD_START)


def cold_starts(ctx: Context, outcome: Outcome) -> None:
    module = cold_module()
    figures: dict[str, Any] = module.measure(ctx.quick, progress=ctx.tick)
    outcome.images = list(module.plot(figures, ctx.images)) if ctx.plots else []
    outcome.figures = list(module.headline(figures)) if hasattr(module, "headline") else cold_figures(module, figures)
    if hasattr(module, "render"):
        section = str(module.render(figures, outcome.images))
        marks = (getattr(module, "START_MARK", None), getattr(module, "END_MARK", None))
        if marks[0] and marks[1]:
            outcome.marks = (str(marks[0]), str(marks[1]))
            section = section.replace(outcome.marks[0], "").replace(outcome.marks[1], "")
        outcome.section = section.strip("\n") + "\n"
        headings = [line for line in outcome.section.splitlines() if line.startswith("## ")]
        outcome.title = str(getattr(module, "SECTION", headings[0] if headings else COLD_SECTION))
    else:
        outcome.title = str(getattr(module, "SECTION", COLD_SECTION))
        outcome.section = "\n".join(
            [outcome.title, "", "```json", json.dumps(figures, indent=1, default=str), "```", ""]
        ) + "".join(run.image_lines(outcome.images))


def cold_figures(module: Any, figures: dict[str, Any]) -> list[Figure]:
    """Headline figures of bench/cold_start.py's answer: init + first invocation per function against the floor.

    Read from its `medians` ({function: {total_ms}}, the floor under `FLOOR`), `front` ({cold_ms,
    warm_ms}) and `layer` ({mib, budget_mib}); a part it lacks gives no figure.
    """
    out: list[Figure] = []
    medians = figures.get("medians") or {}
    floor_name = getattr(module, "FLOOR", "floor")
    short = getattr(module, "SHORT", {})
    goal = float(getattr(module, "GOAL", 1.3))
    n = figures.get("cold_starts", "?")
    floor = medians.get(floor_name, {}).get("total_ms")
    for name, row in medians.items():
        if name != floor_name and "total_ms" in row:
            out.append(
                Figure(
                    "cold starts",
                    f"{short.get(name, name)}: init + first invocation",
                    float(row["total_ms"]),
                    "ms",
                    "floor: import boto3, one client, one GetItem",
                    None if floor is None else float(floor),
                    f"median of {n} fresh emulator environments each, the floor in every round",
                    goal_max=goal,
                )
            )
    front = figures.get("front") or {}
    if "cold_ms" in front and "warm_ms" in front:
        out.append(
            Figure(
                "cold starts",
                "first request through the front after a cold start",
                float(front["cold_ms"]),
                "ms",
                "warm request, median of the next 5",
                float(front["warm_ms"]),
                "sync echo: the authorizer's and the api function's cold starts in a row",
            )
        )
    layer = figures.get("layer") or {}
    if "mib" in layer and "budget_mib" in layer:
        out.append(
            Figure(
                "cold starts",
                "resilience layer, unzipped",
                float(layer["mib"]),
                "MiB",
                "budget",
                float(layer["budget_mib"]),
                "the built layer's files (sam build)",
                goal_max=1.0,
            )
        )
    return out


RUNNERS: dict[str, tuple[str, Callable[[Context, Outcome], None]]] = {
    "command": (run.SECTION, command_path),
    "async": (async_drain.SECTION, async_commands),
    "state": (state_sync.SECTION, state),
    "cold": (COLD_SECTION, cold_starts),
}


def cold_start_available() -> bool:
    """Whether bench/cold_start.py exists (built beside this runner)."""
    return importlib.util.find_spec(COLD_START) is not None


def machine() -> str:
    """The machine as the headline names it."""
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs,"
        f" {platform.python_implementation()} {platform.python_version()}"
    )


def commit() -> str:
    """The checkout's commit, and whether tracked files differ from it."""

    def git(*argv: str) -> str:
        executable = shutil.which("git")
        if executable is None:
            raise OSError("git is not installed")
        # git found on PATH by its full path, with a fixed argv (bandit B603)
        ran = subprocess.run([executable, *argv], cwd=ROOT, capture_output=True, text=True, check=True)  # nosec B603
        return ran.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes" if changed else "")


@contextmanager
def progress_bar(total: int) -> Iterator[tuple[Callable[[str], None], Callable[[str], None]]]:
    """(next benchmark, tick) driving a rich progress bar: one bar over the benchmarks, one line for the phase."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        overall = bar.add_task("benchmarks", total=total)
        phase = bar.add_task("starting", total=None)
        started = [False]

        def next_benchmark(name: str) -> None:
            if started[0]:
                bar.advance(overall)
            started[0] = True
            bar.update(overall, description=f"benchmarks: {name}")

        def tick(description: str) -> None:
            bar.update(phase, description=description)
            bar.console.log(description)

        try:
            yield next_benchmark, tick
        finally:
            if started[0]:
                bar.advance(overall)
            bar.update(phase, description="done", total=1, completed=1)


def run_one(name: str, ctx: Context) -> Outcome:
    """One benchmark; a failure is kept in its outcome (with the traceback printed), not raised."""
    title, runner = RUNNERS[name]
    outcome = Outcome(name=name, title=title)
    began = time.monotonic()
    try:
        runner(ctx, outcome)
    except Exception as exc:  # noqa: BLE001 - one benchmark failing must not lose the others' figures
        traceback.print_exc()
        outcome.failed = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.monotonic() - began
    return outcome


def failed(outcome: Outcome) -> bool:
    """Failed before it had a section to write."""
    return outcome.failed is not None and not outcome.section


def notes(outcomes: Sequence[Outcome], skipped: Sequence[str], quick: bool) -> tuple[str, ...]:
    """The headline's notes: sizes, what did not run or failed, each benchmark's time."""
    times = ", ".join(f"{o.name} {o.seconds:.0f} s" for o in outcomes)
    return join_notes(
        [
            "quick run (`--quick`: small sizes, the figures are noisier than the full run's); " + full_run_note()
            if quick
            else "full run",
            f"time per benchmark: {times}" if times else "",
            *skipped,
            *[f"{o.name}: FAILED ({o.failed}); its section is left as it was" for o in outcomes if failed(o)],
            *[f"{o.name}: {o.failed}" for o in outcomes if o.failed and o.section],
        ]
    )


def write_docs(results: Path, info: RunInfo, outcomes: Sequence[Outcome]) -> None:
    """The headline and each benchmark's section into `results`, every other part kept."""
    text = results.read_text() if results.exists() else ""
    figures = [f for o in outcomes for f in o.figures]
    for outcome in outcomes:
        if outcome.section:
            text = replace_marked(text, slug(outcome.title), outcome.section, marks=outcome.marks)
            if outcome.extra is not None:
                outcome.extra()
    text = replace_marked(text, HEADLINE, headline(info, figures), first=True)
    results.write_text(text.rstrip("\n") + "\n")


def _shown(path: Path) -> str:
    """A path as printed: relative to the checkout when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.suite", description="Every benchmark on one local stack.")
    parser.add_argument("--quick", action="store_true", help=f"small sizes (goal: under {QUICK_GOAL_S:.0f} s)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run this benchmark (repeat for more)")
    parser.add_argument("--no-docs", action="store_true", help="print only: leave docs/benchmarks.md and docs/img")
    parser.add_argument("--pool-size", type=int, help="environments per function (default: full 8, quick 2)")
    args = parser.parse_args(argv)
    args.benchmarks = [b for b in BENCHMARKS if b in (args.only or BENCHMARKS)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    began = time.monotonic()
    load_start = os.getloadavg()
    checkout = commit()  # before the run: its own plots change tracked files
    sizes = QUICK if args.quick else FULL
    if args.pool_size:
        sizes = dataclasses.replace(sizes, pool=args.pool_size)
    plots = state_plots.available()
    skipped: list[str] = []
    if not plots:
        skipped.append("plots: matplotlib is not installed (`make bench` installs requirements/bench.txt)")
    names = list(args.benchmarks)
    if "cold" in names and not cold_start_available():
        names.remove("cold")
        skipped.append(f"cold starts: skipped ({COLD_START} does not exist in this checkout)")
    for line in skipped:
        print(line, flush=True)
    command = "make bench" + (' ARGS="--quick"' if args.quick else "")
    flags = " ".join(["--quick"] * args.quick + [f"--only {name}" for name in args.only or []])
    invoked = "make bench" + (f' ARGS="{flags}"' if flags else "")
    on_stack = [n for n in names if n != "cold"]
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="cmdgate-bench-suite-") as tmp, progress_bar(len(names)) as (step, tick):
        workdir = Path(tmp)
        images = workdir / "img" if args.quick else run.IMAGES  # a quick run's plots are not the docs'
        images.mkdir(exist_ok=True)
        ctx = Context(None, workdir, sizes, args.quick, command, images, plots and not args.no_docs, tick)
        if on_stack:
            tick(f"starting the local stack ({sizes.pool} environments per function)")
            # The state benchmark's parameters: the others do not depend on the sync queue's visibility.
            params = state_sync.PARAMS
            with launch(workdir, admin_key=run.ADMIN_KEY, pool_size=sizes.pool, params=params) as stack:
                ctx.stack = stack
                for name in on_stack:
                    step(name)
                    outcomes.append(run_one(name, ctx))
            ctx.stack = None
        if "cold" in names:
            step("cold")
            outcomes.append(run_one("cold", ctx))
    wall = time.monotonic() - began
    info = RunInfo(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        machine=machine(),
        load=(load_start, os.getloadavg()),
        commit=checkout,
        command=invoked,
        wall_s=wall,
        notes=notes(outcomes, skipped, args.quick),
    )
    for outcome in outcomes:
        if outcome.section:
            print(outcome.section)
    figures = [f for o in outcomes for f in o.figures]
    print(headline(info, figures))
    if not args.no_docs:
        results = QUICK_RESULTS if args.quick else run.RESULTS
        write_docs(results, info, outcomes)
        pngs = [i for o in outcomes for i in o.images if i.parent.resolve() == run.IMAGES.resolve()]
        print(f"wrote {_shown(results)} and {len(pngs)} PNGs in {_shown(run.IMAGES)}")
    goal = f" (goal for --quick: under {QUICK_GOAL_S:.0f} s)" if args.quick else ""
    load_end = os.getloadavg()[0]
    print(f"wall time: {wall:.0f} s{goal}; load average {load_start[0]:.2f} at the start, {load_end:.2f} at the end")
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
