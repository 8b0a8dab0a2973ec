"""Least privilege: every AWS call each function made in this session is allowed by its policy in template.yaml.

moto does not enforce IAM. The local stack signs each function's calls with its own access key id
and the moto endpoint records them; this module is named to run last, over everything the suite
made the functions do. Granted actions no call exercised are reported, not failed: some paths
(the healer's alerts, gist sync failures) are not driven by every run.
"""

from __future__ import annotations

import functools
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from cmdgate_local.iam import check
from cmdgate_local.moto_endpoint import CALLS_PATH
from cmdgate_local.template import Template, load_template
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def recorded_calls(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """The recorded calls, by the function whose access key signed them."""
    owners = {env["AWS_ACCESS_KEY_ID"]: name for name, env in stack.state["functions"].items()}
    by_function: dict[str, list[dict[str, Any]]] = {name: [] for name in stack.state["functions"]}
    for call in httpx.get(stack.state["moto_url"] + CALLS_PATH, timeout=10).json()["calls"]:
        if call["access_key"] in owners:
            by_function[owners[call["access_key"]]].append(call)
    return by_function


def made_calls(stack: Stack, function_id: str) -> bool:
    """Whether the function has made any AWS call yet."""
    return bool(recorded_calls(stack)[function_id])


def drive_every_function(stack: Stack) -> None:
    """Make sure each function ran at least once, even when this module runs alone."""
    assert stack.admin.post("/v1/commands/echo", json={"message": "iam"}).status_code == 200
    queued = stack.admin.post("/v1/commands/echo", json={"message": "iam"}, headers={"Prefer": "respond-async"})
    assert queued.status_code == 202
    execution = f"/v1/executions/{queued.json()['execution_id']}"
    wait_for(lambda: stack.admin.get(execution).json()["status"] == "succeeded", timeout_s=60)
    key = f"iam.probe-{uuid.uuid4().hex[:8]}"
    assert stack.admin.put(f"/v1/state/{key}", json={"n": 1}, headers={"If-None-Match": "*"}).status_code == 201


def test_every_recorded_call_is_allowed_by_the_functions_policy(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    drive_every_function(stack)
    for consumer in ("EventProcessorFunction", "StateSyncFunction"):  # fed by queues: wait for them
        wait_for(functools.partial(made_calls, stack, consumer), timeout_s=60)
    calls = recorded_calls(stack)
    assert calls["AuthorizerFunction"] and calls["ApiFunction"] and calls["WorkerFunction"]
    template = Template(load_template(ROOT / "template.yaml"), stack.state["parameters"])
    refused, unused = check(template, stack.state["resources"], calls)
    report = {
        "exercised": {name: sorted({c["action"] for c in found}) for name, found in calls.items()},
        "granted_but_not_exercised": {name: sorted(patterns) for name, patterns in unused.items()},
    }
    (stack.log_dir / "iam-report.json").write_text(json.dumps(report, indent=2))
    with capsys.disabled():
        print("\nIAM: granted actions no call exercised (informational):")
        for name, patterns in sorted(report["granted_but_not_exercised"].items()):
            print(f"  {name}: {', '.join(patterns) or '-'}")
    assert not refused, "calls the template's policies do not allow:\n" + "\n".join(
        f"  {f.function_id}: {f.action} on {', '.join(f.resources) or '-'} (x{f.count})" for f in refused
    )
