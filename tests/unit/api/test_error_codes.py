"""docs/errors.md lists every problem code the code base can answer, and each problem's `type` points at it."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import cmdgate
from cmdgate import errors
from cmdgate.ratelimit.exceptions import QUOTA_EXCEEDED_TYPE, RateLimited
from cmdgate.state.errors import PreconditionRequired

ROOT = Path(__file__).resolve().parents[3]
ERRORS_DOC = ROOT / "docs" / "errors.md"
SOURCES = [ROOT / "layers", ROOT / "functions"]
# `code="X"` (CommandError and Outcome calls), `status, code, title = 400, "X", ...`, `code: str = "X"`.
_RAISED = re.compile(r'\bcode(?:=|, title = (?:\d+, )?|: str = )"([A-Z][A-Z0-9_]+)"')
_ENTRY = re.compile(r'<a id="([a-z0-9-]+)"></a>`([A-Z][A-Z0-9_]+)`')


def codes_in_source() -> set[str]:
    found: set[str] = set()
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            found.update(_RAISED.findall(path.read_text()))
    return found


def problem_classes() -> list[type[errors.ProblemError]]:
    for module in pkgutil.walk_packages(cmdgate.__path__, "cmdgate."):
        importlib.import_module(module.name)
    pending, seen = [errors.ProblemError], []
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return seen


def documented() -> dict[str, str]:
    """code -> its anchor in docs/errors.md."""
    return {code: anchor for anchor, code in _ENTRY.findall(ERRORS_DOC.read_text())}


def test_the_source_scan_finds_codes_of_every_kind() -> None:
    found = codes_in_source()
    # A class attribute, a CommandError keyword, an Outcome keyword and the base class default.
    assert {"INVALID_STATE_KEY", "UPSTREAM_TIMEOUT", "RESULT_NOT_JSON", "INTERNAL_ERROR"} <= found


def test_every_code_raised_anywhere_is_documented() -> None:
    raised = codes_in_source() | {cls.code for cls in problem_classes()}
    missing = sorted(raised - set(documented()))
    assert not missing, f"add these codes to docs/errors.md: {missing}"


def test_no_documented_code_is_stale() -> None:
    raised = codes_in_source() | {cls.code for cls in problem_classes()}
    assert sorted(set(documented()) - raised) == []


def test_each_problem_type_is_the_anchor_of_its_entry() -> None:
    anchors = documented()
    for cls in problem_classes():
        if cls.type_uri is None:
            uri = errors.problem_type(cls.code)
            assert uri == f"https://cmdgate.dev/errors#{anchors[cls.code]}", cls
    problem = PreconditionRequired("x").to_problem()
    assert problem["type"] == "https://cmdgate.dev/errors#precondition-required"


def test_a_command_failure_points_at_the_code_the_command_chose() -> None:
    failed = errors.CommandFailed("upstream")
    failed.code = "UPSTREAM_TIMEOUT"
    assert failed.to_problem()["type"] == "https://cmdgate.dev/errors#upstream-timeout"


def test_the_rate_limit_keeps_the_iana_type() -> None:
    assert RateLimited.type_uri == QUOTA_EXCEEDED_TYPE
    assert QUOTA_EXCEEDED_TYPE == "https://iana.org/assignments/http-problem-types#quota-exceeded"
