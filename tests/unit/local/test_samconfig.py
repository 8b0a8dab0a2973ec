"""samconfig.toml: the deploy defaults name real template parameters with values the template accepts."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

SAMCONFIG = Path(__file__).resolve().parents[3] / "samconfig.toml"


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    with SAMCONFIG.open("rb") as handle:
        return tomllib.load(handle)


def overrides(deploy: dict[str, Any]) -> dict[str, str]:
    raw = deploy["parameter_overrides"]
    items = raw if isinstance(raw, list) else shlex.split(raw)
    pairs = [item.split("=", 1) for item in items]
    assert all(len(pair) == 2 for pair in pairs), items
    return dict((name, value) for name, value in pairs)


def test_every_override_names_a_template_parameter_with_an_accepted_value(
    samconfig: dict[str, Any], template_data: dict[str, Any]
) -> None:
    parameters: dict[str, dict[str, Any]] = template_data["Parameters"]
    given = overrides(samconfig["default"]["deploy"]["parameters"])
    assert given, "parameter_overrides is empty"
    assert set(given) <= set(parameters), f"not template parameters: {sorted(set(given) - set(parameters))}"
    for name, value in given.items():
        spec = parameters[name]
        if "AllowedValues" in spec:
            assert value in spec["AllowedValues"], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), name
        if spec["Type"] == "Number":
            assert float(value) >= spec.get("MinValue", float("-inf")), name


def test_deploy_defaults_let_guided_deploy_ask_only_what_it_must(samconfig: dict[str, Any]) -> None:
    deploy = samconfig["default"]["deploy"]["parameters"]
    assert deploy["stack_name"] == "cmdgate"
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert samconfig["default"]["global"]["parameters"]["region"]


def test_build_is_cached_and_parallel_and_validate_lints(samconfig: dict[str, Any]) -> None:
    assert samconfig["version"] == 0.1
    build = samconfig["default"]["build"]["parameters"]
    assert build["cached"] is True
    assert build["parallel"] is True
    assert samconfig["default"]["validate"]["parameters"]["lint"] is True


def test_the_template_names_no_iam_resource_so_capability_iam_suffices(template_data: dict[str, Any]) -> None:
    # A RoleName/PolicyName/UserName/GroupName would need CAPABILITY_NAMED_IAM instead.
    named = [
        logical_id
        for logical_id, resource in template_data["Resources"].items()
        if resource["Type"].startswith("AWS::IAM::")
        and {"RoleName", "UserName", "GroupName", "ManagedPolicyName"} & set(resource.get("Properties", {}))
    ]
    assert named == []
