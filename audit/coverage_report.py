"""Coverage of `make test`: combine every process's data, report, write docs/coverage.md, hold the threshold.

`python -m audit.coverage_report --data DIR --doc docs/coverage.md --fail-under 88` combines the
parallel data files the run left in DIR (pytest and its workers, the local stacks, each function's
runtime under the emulator, their paths mapped back to the tree by [tool.coverage.paths]), prints
coverage's table, then lines and branches per package, rewrites the generated part of the doc and
exits 1 when the layer's and functions' line coverage is under the threshold.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# What is measured and reported, by folder of the tree.
PACKAGES = ("layers/resilience/cmdgate", "layers/commands/cmdgate_commands", "functions")
BEGIN = "<!-- coverage:begin (written by `make test`: audit/coverage_report.py) -->"
END = "<!-- coverage:end -->"
WORST_SHOWN = 10


@dataclass(frozen=True)
class Figures:
    """Lines and branches of one package, one module or the total."""

    name: str
    statements: int = 0
    covered_lines: int = 0
    branches: int = 0
    covered_branches: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.name,
            self.statements + other.statements,
            self.covered_lines + other.covered_lines,
            self.branches + other.branches,
            self.covered_branches + other.covered_branches,
        )

    @property
    def lines_pct(self) -> float:
        """Covered statements, in percent (100 for none)."""
        return _pct(self.covered_lines, self.statements)

    @property
    def branches_pct(self) -> float:
        """Covered branch destinations, in percent (100 for none)."""
        return _pct(self.covered_branches, self.branches)

    @property
    def missed_lines(self) -> int:
        """Statements never run."""
        return self.statements - self.covered_lines


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def relative_name(filename: str, root: Path = ROOT) -> str:
    """A reported file's path relative to the tree (coverage reports absolute paths for mapped files)."""
    path = Path(filename)
    if path.is_absolute():
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def package_of(name: str) -> str | None:
    """The measured package a file belongs to, if any."""
    return next((package for package in PACKAGES if name.startswith(f"{package}/")), None)


def module_figures(report: Mapping[str, Any], root: Path = ROOT) -> list[Figures]:
    """Each measured file's figures from coverage's JSON report (files outside PACKAGES left out)."""
    found = []
    for filename, data in report.get("files", {}).items():
        name = relative_name(filename, root)
        if package_of(name) is None:
            continue
        summary = data["summary"]
        found.append(
            Figures(
                name,
                int(summary["num_statements"]),
                int(summary["covered_lines"]),
                int(summary.get("num_branches", 0)),
                int(summary.get("covered_branches", 0)),
            )
        )
    return sorted(found, key=lambda figures: figures.name)


def package_figures(modules: Iterable[Figures]) -> list[Figures]:
    """The modules' figures summed per package, in PACKAGES order."""
    sums = {package: Figures(package) for package in PACKAGES}
    for module in modules:
        package = package_of(module.name)
        if package is not None:
            sums[package] = sums[package] + module
    return list(sums.values())


def total_of(packages: Iterable[Figures]) -> Figures:
    """Every package together."""
    total = Figures("total")
    for package in packages:
        total = total + package
    return total


def render(modules: Sequence[Figures], date: str, fail_under: float) -> str:
    """The generated part of docs/coverage.md."""
    packages = package_figures(modules)
    total = total_of(packages)
    rows = [
        "| package | statements | lines | branches | branch coverage |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| `{p.name}` | {p.statements} | {p.lines_pct:.1f} % | {p.branches} | {p.branches_pct:.1f} % |"
            for p in packages
        ),
        f"| **total** | {total.statements} | **{total.lines_pct:.1f} %** | {total.branches} | "
        f"**{total.branches_pct:.1f} %** |",
    ]
    worst = sorted(modules, key=lambda m: (-m.missed_lines, m.name))[:WORST_SHOWN]
    worst_rows = [
        "| module | statements | missed | lines | branches |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| `{m.name}` | {m.statements} | {m.missed_lines} | {m.lines_pct:.1f} % | {m.branches_pct:.1f} % |"
            for m in worst
        ),
    ]
    return "\n".join(
        [
            BEGIN,
            f"Measured by `make test` on {date}: unit and integration tests combined, the functions' runtimes "
            "under the emulator included.",
            "",
            f"**Lines: {total.lines_pct:.1f} %** ({total.covered_lines} of {total.statements} statements), "
            f"**branches: {total.branches_pct:.1f} %** ({total.covered_branches} of {total.branches}); "
            f"goal 90 % lines; `make test` fails under {fail_under:g} % lines.",
            "",
            *rows,
            "",
            f"The {len(worst)} modules with the most statements never run:",
            "",
            *worst_rows,
            END,
        ]
    )


def replace_generated(document: str, generated: str) -> str:
    """`document` with its generated part replaced (appended when it has none); the rest is kept."""
    start, end = document.find(BEGIN), document.find(END)
    if start == -1 or end == -1 or end < start:
        return document.rstrip("\n") + ("\n\n" if document.strip() else "") + generated + "\n"
    return document[:start] + generated + document[end + len(END) :]


def combine(data_dir: Path) -> dict[str, Any]:
    """Combine the run's data files (paths mapped back to the tree), print coverage's table, return its JSON report."""
    import coverage

    cov = coverage.Coverage(data_file=str(data_dir / ".coverage"), config_file=str(ROOT / "pyproject.toml"))
    cov.combine([str(data_dir)])
    cov.save()
    include = [str(ROOT / package / "*") for package in PACKAGES]
    cov.report(include=include, skip_covered=True, skip_empty=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        cov.json_report(outfile=str(out), include=include)
        report: dict[str, Any] = json.loads(out.read_text())
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Combine, print, write the doc, compare with the threshold."""
    parser = argparse.ArgumentParser(prog="audit.coverage_report", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the folder of the run's .coverage.* files")
    parser.add_argument("--doc", type=Path, default=None, help="the document whose generated part to rewrite")
    parser.add_argument("--fail-under", type=float, default=0.0, help="the least line coverage, in percent")
    args = parser.parse_args(argv)
    if not any(args.data.glob(".coverage.*")):
        print(f"coverage: no data files in {args.data}", file=sys.stderr)
        return 1
    modules = module_figures(combine(args.data), ROOT)
    packages = package_figures(modules)
    total = total_of(packages)
    for package in [*packages, total]:
        print(f"coverage {package.name}: lines {package.lines_pct:.1f} %, branches {package.branches_pct:.1f} %")
    if args.doc is not None:
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        current = args.doc.read_text() if args.doc.exists() else ""
        args.doc.write_text(replace_generated(current, render(modules, date, args.fail_under)))
    if total.lines_pct < args.fail_under:
        print(f"coverage: lines {total.lines_pct:.1f} % is under the threshold {args.fail_under:g} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
