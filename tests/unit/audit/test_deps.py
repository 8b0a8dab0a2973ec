"""audit.deps: pip-audit's answers read right; no advisory database means a loud skip, not a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.deps import PROBE, Report, parse, requirement_files, run, venv_site_packages

ROOT = Path(__file__).resolve().parents[3]
NOT_FOUND = "Dependency not found on PyPI and could not be audited: boto3 (1.44.5)"


def test_pip_audit_output_is_read_into_audited_skipped_and_vulnerable() -> None:
    report = parse(
        "requirements/dev.txt",
        {
            "dependencies": [
                {"name": "httpx", "version": "0.28.1", "vulns": []},
                {"name": "jinja2", "version": "2.0", "vulns": [{"id": "GHSA-x", "fix_versions": ["3.1.6"]}]},
                {"name": "boto3", "skip_reason": NOT_FOUND},
            ],
            "fixes": [],
        },
    )
    assert (report.audited, report.skipped) == (2, ["boto3"])
    assert report.vulnerable == ["jinja2 2.0: GHSA-x (fixed in 3.1.6)"]
    assert report.reached


def test_every_pinned_requirements_file_is_audited_the_probe_first() -> None:
    files = requirement_files(ROOT)
    assert files[0] == PROBE
    assert {"requirements/dev.txt", "requirements/audit.txt", "layers/resilience/requirements.txt"} <= set(files)


class FakeAudit:
    """Stands in for pip-audit: answers per source, records what was asked."""

    def __init__(self, answers: dict[str, Report]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, bool]] = []

    def __call__(self, root: Path, source: str, *, path_mode: bool) -> Report:
        self.asked.append((source, path_mode))
        return self.answers.get(source) or Report(source, audited=3)


def test_no_advisory_database_is_a_clear_skip_not_a_pass(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeAudit({PROBE: Report(PROBE, skipped=["awslambdaric 4.2.2", "boto3 1.44.5"])})
    assert run(ROOT, fake) == 0
    out = capsys.readouterr().out
    assert "SKIPPED" in out and "could not be reached" in out and "No known vulnerabilities" not in out
    assert fake.asked == [(PROBE, False)]  # nothing else is tried


def test_a_failing_pip_audit_is_a_skip_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeAudit({PROBE: Report(PROBE, error="pip-audit exited 1: ConnectionError")})
    assert run(ROOT, fake) == 0
    out = capsys.readouterr().out
    assert "SKIPPED" in out and "ConnectionError" in out
    assert fake.asked == [(PROBE, False)]


def test_a_known_vulnerability_fails_the_audit(capsys: pytest.CaptureFixture[str]) -> None:
    bad = Report("requirements/dev.txt", audited=5, vulnerable=["jinja2 2.0: GHSA-x (fixed in 3.1.6)"])
    fake = FakeAudit({"requirements/dev.txt": bad})
    assert run(ROOT, fake) == 1
    assert "GHSA-x" in capsys.readouterr().out
    assert ("requirements/dev.txt", False) in fake.asked


def test_a_clean_reachable_audit_covers_every_file_and_passes(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeAudit({})
    assert run(ROOT, fake) == 0
    asked_files = [source for source, path_mode in fake.asked if not path_mode]
    assert asked_files == requirement_files(ROOT)
    assert any(path_mode for _, path_mode in fake.asked) == bool(venv_site_packages(ROOT))
    assert "0 known vulnerabilities" in capsys.readouterr().out
