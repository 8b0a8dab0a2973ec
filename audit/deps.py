"""pip-audit over the pinned requirements and the venvs they install, tolerant of having no advisory database.

pip-audit asks PyPI's JSON API for each pinned release (its `pypi` vulnerability service). Where
PyPI's per-release JSON cannot be reached, pip-audit marks every package "not found" and still
says "No known vulnerabilities found": that would read as a pass. So the first file is a probe:
if not one of its packages could be audited, the run stops with a clear SKIPPED line and exit 0.
Otherwise every requirements file and venv is audited, and any known vulnerability fails (exit 1).

Run with the audit venv's Python: `.venv-audit/bin/python -m audit.deps`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The probe goes first: a small file whose packages are all on PyPI.
PROBE = "requirements/runtime.txt"
VENVS = (".venv", ".venv-runtime", ".venv-sam", ".venv-audit")
TIMEOUT_S = 10


@dataclass
class Report:
    """What pip-audit said about one requirements file or venv."""

    source: str
    audited: int = 0
    skipped: list[str] = field(default_factory=list)
    vulnerable: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def reached(self) -> bool:
        """Whether the advisory database answered for at least one package."""
        return self.error is None and self.audited > 0


def requirement_files(root: Path) -> list[str]:
    """Every pinned requirements file, the probe first."""
    paths = (*root.glob("requirements/*.txt"), *root.glob("layers/*/requirements.txt"))
    found = sorted(str(p.relative_to(root)) for p in paths)
    return [PROBE, *(f for f in found if f != PROBE)] if PROBE in found else found


def venv_site_packages(root: Path) -> list[str]:
    """The site-packages of each project venv that exists (the pins' resolved closure)."""
    return sorted(str(p.relative_to(root)) for venv in VENVS for p in (root / venv).glob("lib/python3*/site-packages"))


def parse(source: str, output: dict[str, Any]) -> Report:
    """A Report from pip-audit's JSON output (`-f json`)."""
    report = Report(source)
    for dependency in output.get("dependencies", []):
        name = f"{dependency.get('name')} {dependency.get('version', '')}".strip()
        if "skip_reason" in dependency:
            report.skipped.append(name)
            continue
        report.audited += 1
        for vuln in dependency.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none"
            report.vulnerable.append(f"{name}: {vuln.get('id')} (fixed in {fixes})")
    return report


def audit(root: Path, source: str, *, path_mode: bool) -> Report:
    """Run pip-audit on one requirements file (its exact pins) or one site-packages directory."""
    target = ["--path", source] if path_mode else ["--disable-pip", "--no-deps", "-r", source]
    command = [sys.executable, "-m", "pip_audit", *target, "-f", "json", "--progress-spinner", "off"]
    command += ["--timeout", str(TIMEOUT_S)]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv  # nosec B603
    try:
        return parse(source, json.loads(done.stdout))
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Report(source, error=f"pip-audit exited {done.returncode}: {last[:300]}")


def run(root: Path, audit_one: Any = audit) -> int:
    """Audit everything; 0 when clean or when the advisory database cannot be reached, 1 on a vulnerability."""
    files = requirement_files(root)
    probe = audit_one(root, files[0], path_mode=False)
    if not probe.reached:
        why = probe.error or f"none of its {len(probe.skipped)} packages could be looked up"
        print(f"pip-audit: SKIPPED, the advisory database (PyPI's per-release JSON) could not be reached: {why}.")
        print("pip-audit: nothing was audited; run `make audit` where PyPI's JSON API answers to check the pins.")
        return 0
    reports = [probe, *(audit_one(root, f, path_mode=False) for f in files[1:])]
    reports += [audit_one(root, p, path_mode=True) for p in venv_site_packages(root)]
    failed = False
    for report in reports:
        status = report.error or f"{report.audited} audited, {len(report.skipped)} not found"
        print(f"pip-audit {report.source}: {status}, {len(report.vulnerable)} known vulnerabilities")
        for line in report.vulnerable:
            print(f"  {line}")
        failed = failed or bool(report.vulnerable)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.deps", description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT)
    return run(parser.parse_args(argv).root)


if __name__ == "__main__":
    sys.exit(main())
