"""Pure parts of the benchmark report: figures as ratios to a same-run baseline, the headline table, markers.

No stack, no clock, no disk: `make bench` (bench/suite.py) and each benchmark module build their
figures and Markdown with these, and write docs/benchmarks.md through `replace_marked`.

docs/benchmarks.md keeps each benchmark's section between two HTML comments,

    <!-- bench:<name> -->
    ## <title>
    ...
    <!-- /bench:<name> -->

so a benchmark rewrites its own section and leaves the others (and hand-written prose outside
any markers) alone. A section written before the markers existed (a `## <title>` heading up to
the next heading) is replaced once and gets its markers then.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

HEADLINE = "headline"
TITLE = "# Benchmarks"


@dataclass(frozen=True)
class Figure:
    """One measured figure beside the baseline it is divided by, measured in the same run.

    The machine is shared and noisy, so absolute values move from run to run; `ratio` is what a
    goal is stated against (`goal_max`: the ratio must be at most this; `goal_min`: at least).
    """

    benchmark: str
    name: str
    value: float | None
    unit: str
    baseline_name: str
    baseline: float | None
    how: str
    goal_max: float | None = None
    goal_min: float | None = None
    baseline_unit: str | None = None  # when it differs from the value's (writes/s against req/s)
    # The value is a lower bound (the run stopped waiting before it was reached): it can miss a
    # `goal_max` but never meet one.
    lower_bound: bool = False

    @property
    def ratio(self) -> float | None:
        """value / baseline; None when either is missing or the baseline is 0 (or not finite)."""
        if self.value is None or self.baseline is None or self.baseline == 0:
            return None
        ratio = self.value / self.baseline
        return ratio if math.isfinite(ratio) else None

    @property
    def goal(self) -> str:
        """The goal as text: `<= 1.3x`, `>= 0.8x`, or `-` when none is set."""
        if self.goal_max is not None:
            return f"<= {self.goal_max:g}x"
        if self.goal_min is not None:
            return f">= {self.goal_min:g}x"
        return "-"

    @property
    def met(self) -> bool | None:
        """Whether the ratio meets the goal; None without a goal or a ratio."""
        ratio = self.ratio
        if ratio is None or (self.goal_max is None and self.goal_min is None):
            return None
        if self.lower_bound:
            if self.goal_max is not None and ratio > self.goal_max:
                return False
            return None if self.goal_min is None or ratio < self.goal_min else True
        return (self.goal_max is None or ratio <= self.goal_max) and (self.goal_min is None or ratio >= self.goal_min)


def number(value: float | None, unit: str = "") -> str:
    """A figure for a table cell: three significant digits at most, its unit after it; `-` for none."""
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1000:
        text = str(int(value))
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _cell(text: str) -> str:
    """Table cell text: a `|` would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def figure_table(figures: Sequence[Figure]) -> list[str]:
    """The Markdown table of figures: value, same-run baseline, their ratio, the goal, met, how measured."""
    verdicts = {True: "met", False: "**missed**", None: "-"}
    lines = [
        "| benchmark | figure | value | baseline (same run) | ratio | goal | met | how measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        bound = "> " if f.lower_bound else ""
        ratio = "-" if f.ratio is None else f"{bound}{f.ratio:.2f}x"
        cells = (
            f.benchmark,
            f.name,
            bound + number(f.value, f.unit),
            f"{f.baseline_name}: {number(f.baseline, f.unit if f.baseline_unit is None else f.baseline_unit)}",
            ratio,
            f.goal,
            verdicts[f.met],
            f.how,
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


@dataclass(frozen=True)
class RunInfo:
    """When, where and how a run was made: the headline's first lines."""

    date: str  # UTC, minutes
    machine: str  # platform, CPUs
    load: tuple[tuple[float, float, float], tuple[float, float, float]]  # os.getloadavg() at start and end
    commit: str
    command: str
    wall_s: float
    notes: tuple[str, ...] = ()


def headline(info: RunInfo, figures: Sequence[Figure]) -> str:
    """The headline section: the run's facts, then every figure of every benchmark in one table."""

    def load(avg: tuple[float, float, float]) -> str:
        return " / ".join(f"{x:.2f}" for x in avg)

    minutes, seconds = divmod(round(info.wall_s), 60)
    lines = [
        "## Headline",
        "",
        f"- date: {info.date} UTC; commit {info.commit}",
        f"- machine: {info.machine}",
        f"- load average (1 / 5 / 15 min): {load(info.load[0])} at the start, {load(info.load[1])} at the end"
        " (the machine is shared: every figure is a ratio to a baseline measured in the same run)",
        f"- command: `{info.command}`, wall time {minutes} min {seconds:02d} s",
        *[f"- {note}" for note in info.notes],
        "",
        *figure_table(figures),
        "",
    ]
    return "\n".join(lines)


def slug(title: str) -> str:
    """A marker name from a section title: `## State: write-behind gist sync` -> `state-write-behind-gist-sync`."""
    words = re.sub(r"[^a-z0-9]+", "-", title.lstrip("#").strip().lower()).strip("-")
    if not words:
        raise ValueError(f"no marker name in {title!r}")
    return words


def markers(name: str) -> tuple[str, str]:
    """The opening and closing comments of a marked section."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"bad marker name {name!r}")
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def marked(name: str, body: str) -> str:
    """`body` between its markers (one trailing newline)."""
    start, end = markers(name)
    return f"{start}\n{body.strip(chr(10))}\n{end}\n"


def read_marked(text: str, name: str) -> str | None:
    """The body between a section's markers, or None when the document has none."""
    start, end = markers(name)
    begin = text.find(start)
    if begin < 0:
        return None
    stop = text.find(end, begin)
    if stop < 0:
        raise ValueError(f"{start} has no {end}")
    return text[begin + len(start) : stop].strip("\n")


def _legacy_span(text: str, title: str) -> tuple[int, int] | None:
    """Where an unmarked `title` section starts and ends (the next heading of its level or higher, or a marker)."""
    match = re.search(rf"^{re.escape(title)}[ \t]*$", text, flags=re.MULTILINE)
    if match is None:
        return None
    level = len(title) - len(title.lstrip("#"))
    after = re.compile(rf"^(#{{1,{level}}} |<!-- /?bench:)", flags=re.MULTILINE)
    following = after.search(text, match.end())
    return match.start(), following.start() if following else len(text)


def replace_marked(
    text: str, name: str, body: str, *, first: bool = False, marks: tuple[str, str] | None = None
) -> str:
    """`text` with the section `name` set to `body`, every other part kept as it was.

    The section replaces its marked copy; else an unmarked section with the same title (the body's
    first line when it is a heading); else it is added at the end, or right under the document's
    `# ` title when `first` (the headline). `marks` are a module's own markers, used instead of
    `markers(name)` (a benchmark that writes its section itself, between those).
    """
    start, end = marks if marks is not None else markers(name)
    section = f"{start}\n{body.strip(chr(10))}\n{end}\n"
    begin = text.find(start)
    if begin >= 0:
        stop = text.find(end, begin)
        if stop < 0:
            raise ValueError(f"{start} has no {end}")
        stop += len(end)
        if text[stop : stop + 1] == "\n":
            stop += 1
        return text[:begin] + section + text[stop:]
    heading = body.strip("\n").split("\n", 1)[0]
    span = _legacy_span(text, heading) if heading.startswith("#") else None
    if span is not None:
        rest = text[span[1] :]
        return text[: span[0]] + section + ("\n" + rest if rest and not rest.startswith("\n") else rest)
    if not text.strip():
        text = f"{TITLE}\n"
    if first:
        match = re.search(r"^# .*\n", text, flags=re.MULTILINE)
        cut = match.end() if match else 0
        return text[:cut] + "\n" + section + "\n" + text[cut:].lstrip("\n")
    return text.rstrip("\n") + "\n\n" + section


def join_notes(notes: Iterable[str]) -> tuple[str, ...]:
    """Notes without blanks or repeats, in order."""
    seen: dict[str, None] = {}
    for note in notes:
        if note.strip():
            seen.setdefault(note.strip(), None)
    return tuple(seen)


# What a benchmark calls with a short description as it starts each phase (the runner's progress bar).
Tick = Callable[[str], object]


def silent(_: str) -> None:
    """A Tick that shows nothing (a benchmark run on its own prints its own lines)."""
