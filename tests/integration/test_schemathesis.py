"""Property-based API testing with schemathesis against the served OpenAPI description.

Runs on the full local stack (the `stack` fixture: every function, moto, the gist stand-in) with a fixed
seed and a bounded number of examples per operation, in both generation modes:

- positive cases (schema-valid requests): every answer must be documented for its route (status code,
  content type, body schema, headers) and never a 5xx the contract does not document;
- negative cases (schema-violating requests): they must be refused with a 4xx.

Driven through hypothesis strategies (`operation.as_strategy`) because `schemathesis.pytest.from_fixture`
does not work with pytest 9; one more test runs the `st` CLI for the coverage phase the strategies do not
have (repeated, missing and boundary values, undeclared Content-Types). Neither its stateful phase nor
values taken from earlier responses (`extra-data-sources`): both feed the key ids GET /v1/admin/keys lists
into DELETE /v1/admin/keys/{key_id}, revoking the admin key the other tests of the session share.

The testing pack's commands are left out of the generated cases: `fail` answers whatever status it is
asked for, by design, and `sleep` / `blob` only cost time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
TESTING_PACK = frozenset({"blob", "count", "fail", "limited", "sleep"})  # layers/commands/cmdgate_commands/testing
# Generated names are almost never real commands: the builtin pack's are also pinned, one case each.
BUILTIN_PACK = ("counter.increment", "echo", "http.request", "state.get", "state.merge")
# A refusal of schema-violating data: the usual 4xx, and 413 for a body over its route's limit.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
# (operation id, mode) -> reason, for cases known to fail; empty since every JSON route shares one body gate.
XFAIL: dict[tuple[str, str], str] = {}
# Operations fuzzed with invalid data only: a valid body does real work that other tests cover.
NEGATIVE_ONLY = {
    "recoverState": "a valid body runs a recovery of the whole shared stack (up to 15 s a call); "
    "tests/integration/test_state_recovery.py runs it",
}
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
OPERATIONS = {
    op["operationId"]: op for ops in json.loads(DOCUMENT.read_text())["paths"].values() for op in ops.values()
}
EXCLUDED = sorted({operation_id for (operation_id, _) in XFAIL} | set(NEGATIVE_ONLY))  # from the CLI run


def _cases() -> list[Any]:
    cases = []
    for operation_id, operation in sorted(OPERATIONS.items()):
        # Nothing to get wrong without parameters or a body (the credentials are supplied, never generated).
        negatable = operation.get("parameters") or operation.get("requestBody")
        modes = ("positive", "negative") if negatable else ("positive",)
        for mode in ("negative",) if operation_id in NEGATIVE_ONLY else modes:
            reason = XFAIL.get((operation_id, mode))
            marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
            cases.append(
                pytest.param(operation_id, GenerationMode(mode), None, marks=marks, id=f"{operation_id}-{mode}")
            )
            if operation_id == "runCommand":
                cases += [
                    pytest.param(operation_id, GenerationMode(mode), name, id=f"{operation_id}-{name}-{mode}")
                    for name in BUILTIN_PACK
                ]
    return cases


@pytest.fixture(scope="module")
def api_schema(stack: Stack) -> Any:
    schema = schemathesis.openapi.from_url(f"{stack.url}/v1/openapi.json")
    schema.config.checks.negative_data_rejection.expected_statuses = REJECTIONS
    return schema


@pytest.fixture(scope="module")
def fuzz_key(stack: Stack) -> str:
    """An admin key of its own, with a quota no run exhausts: the other tests' buckets stay untouched."""
    return stack.create_key(["admin"], name="schemathesis", rate_limit={"quota": 100_000, "window_s": 60})


seen: Counter[tuple[str, str, int]] = Counter()


@pytest.mark.parametrize(("operation_id", "mode", "command"), _cases())
def test_every_answer_is_documented(
    api_schema: Any, fuzz_key: str, operation_id: str, mode: GenerationMode, command: str | None
) -> None:
    operation = api_schema.find_operation_by_id(operation_id)
    pinned = {"name": command} if command else None
    headers = {"Authorization": f"Bearer {fuzz_key}"}

    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    # The credentials are part of the generated case (so a negative case never has them negated and then
    # put back by the caller): schemathesis leaves a supplied header alone.
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=pinned))
    def check(case: Any) -> None:
        assume((case.path_parameters or {}).get("name") not in TESTING_PACK)
        response = case.call(timeout=60)
        seen[(command or operation_id, mode.value, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    check()
    assert any(op == (command or operation_id) and m == mode.value for (op, m, _) in seen), "no case was sent"


def test_the_cli_phases_find_nothing(stack: Stack, fuzz_key: str, tmp_path: Path) -> None:
    """`st run` (coverage and fuzzing phases) over every operation."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"[checks.negative_data_rejection]\nexpected-statuses = [{', '.join(REJECTIONS)}]\n"
        + "".join(f"[phases.{phase}.extra-data-sources]\nresponses = false\n" for phase in ("coverage", "fuzzing"))
    )
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(config),
        "run",
        f"{stack.url}/v1/openapi.json",
        "--url",
        stack.url,
        "-H",
        f"Authorization: Bearer {fuzz_key}",
        "--checks",
        ",".join(check.__name__ for check in CHECKS),
        "--max-examples",
        "10",
        "--seed",
        "11",
        "--workers",
        "1",
        "--phases",
        "coverage,fuzzing",
        *[arg for operation_id in EXCLUDED for arg in ("--exclude-operation-id", operation_id)],
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert f"Selected: {len(OPERATIONS) - len(EXCLUDED)}/{len(OPERATIONS)}" in result.stdout


def test_the_run_reached_answers_and_refusals() -> None:
    """Runs after the cases above: more than the happy path, and more than refusals, were exercised."""
    statuses = {status for (_, _, status) in seen}
    assert any(status < 300 for status in statuses), seen
    assert any(400 <= status < 500 for status in statuses), seen
    print(sorted(seen.items()))
