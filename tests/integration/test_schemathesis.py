"""Property-based API testing with schemathesis against the served OpenAPI description.

Runs on a stack with only the `builtin` command pack (as a deployment has), with a fixed
seed and a bounded number of examples. Every answer must be documented for its route
(status code, content type, body schema, headers); that rules out any 5xx the contract
does not document.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import Stack, running_stack

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 15
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def builtin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("builtin-stack"), ("CommandPacks=builtin",)) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(builtin_stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{builtin_stack.url}/v1/openapi.json")


def test_every_answer_is_documented(api_schema: Any, builtin_stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {builtin_stack.admin_key}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    seen: Counter[tuple[str, int]] = Counter()
    assert len(operations) >= 7
    for operation in operations:

        @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers=headers, timeout=60)
            seen[(f"{case.method} {case.path}", response.status_code)] += 1
            case.validate_response(response, checks=CHECKS)

        check()
    print(sorted(seen.items()))
    # Every operation was exercised, and more than its happy path.
    assert {route for route, _ in seen} == {f"{op.method.upper()} {op.path}" for op in operations}
    assert any(status >= 400 for _, status in seen)
