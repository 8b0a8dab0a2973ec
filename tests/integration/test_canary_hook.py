"""The CodeDeploy pre-traffic hook against the local stack: it passes a good build and refuses a broken one.

The hook runs in the Lambda emulator with the environment the template gives it. Its Lambda
invokes and its CodeDeploy report go to a loopback stand-in (moto has neither the stack's
functions nor PutLifecycleEventHookExecutionStatus), which serves each version ARN from an
emulator running a build of the function; its key writes go to the stack's own moto.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cmdgate_local.deploy_standin import DeployStandIn, HookReport
from cmdgate_local.iam import check
from cmdgate_local.invoke import function_environment
from cmdgate_local.lambda_runtime import ExecutionEnvironment
from cmdgate_local.stack import StackConfig
from cmdgate_local.template import Template, load_template
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HOOK = "PreTrafficHookFunction"
# A build whose command route fails while its health stays green: only the echo round trip can catch it.
BROKEN_APP = """
from app_real import *  # noqa: F403
from app_real import lambda_handler as _real_handler


def lambda_handler(event, context):
    if event.get("resource") == "/v1/commands/{name}":
        raise RuntimeError("deliberately broken build")
    return _real_handler(event, context)
"""


def broken_build(build_dir: Path, into: Path) -> Path:
    """A copy of the build (layers linked) whose ApiFunction is broken as BROKEN_APP says."""
    into.mkdir(parents=True)
    for entry in build_dir.iterdir():
        if entry.name != "ApiFunction":
            (into / entry.name).symlink_to(entry)
    api = into / "ApiFunction"
    shutil.copytree(build_dir / "ApiFunction", api)
    (api / "app.py").rename(api / "app_real.py")
    (api / "app.py").write_text(BROKEN_APP)
    return into


@dataclass
class Deployment:
    """The stand-in, the hook's environment, and the emulators serving each build of the api."""

    standin: DeployStandIn
    hook: ExecutionEnvironment
    api_arn: str
    good_api: ExecutionEnvironment
    broken_api: ExecutionEnvironment

    def serve_api(self, env: ExecutionEnvironment) -> None:
        """Make `env` the api version being deployed."""
        self.standin.functions[self.api_arn] = env.invoke

    def run_hook(self) -> tuple[dict[str, Any], list[HookReport], dict[str, str]]:
        """One lifecycle event: the hook's answer, the reports CodeDeploy got, the event's ids."""
        ids = {"DeploymentId": f"d-{uuid.uuid4().hex[:9].upper()}", "LifecycleEventHookExecutionId": uuid.uuid4().hex}
        result = self.hook.invoke(json.dumps(ids).encode())
        assert not result.function_error, result.payload
        return result.json(), self.standin.take_reports(), ids


@pytest.fixture(scope="module")
def deployment(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    config = StackConfig(root=ROOT)
    state = stack.state
    build = Path(state["build_dir"])
    logs = tmp_path_factory.mktemp("canary-logs")
    (logs / "broken").mkdir()
    broken = broken_build(build, tmp_path_factory.mktemp("canary") / "build")
    standin = DeployStandIn(application="cmdgate-local-ServerlessDeploymentApplication", deployment_group="ApiFunction")
    standin.start()
    endpoints = {"AWS_ENDPOINT_URL_LAMBDA": standin.url, "AWS_ENDPOINT_URL_CODEDEPLOY": standin.url}
    # The emulator counts a cold start's init against the function's timeout (the authorizer's is
    # 5 s); Lambda gives init its own 10 s. On a loaded machine the init alone can take 5 s.
    slow_init = {"AWS_LAMBDA_FUNCTION_TIMEOUT": "30"}
    with ExitStack() as running:
        running.callback(standin.stop)
        good_api = running.enter_context(
            function_environment(config, state, "ApiFunction", logs, environment=slow_init, build_dir=build)
        )
        broken_api = running.enter_context(
            function_environment(config, state, "ApiFunction", logs / "broken", environment=slow_init, build_dir=broken)
        )
        authorizer = running.enter_context(
            function_environment(config, state, "AuthorizerFunction", logs, environment=slow_init, build_dir=build)
        )
        hook = running.enter_context(
            function_environment(config, state, HOOK, logs, environment=endpoints, build_dir=build)
        )
        standin.functions[stack.resource("AuthorizerFunction", "Version")] = authorizer.invoke
        yield Deployment(standin, hook, stack.resource("ApiFunction", "Version"), good_api, broken_api)


def smoke_keys(stack: Stack) -> list[Any]:
    records, _ = stack.key_store().list_page(1000, None)
    return [r for r in records if r.name == "canary-pre-traffic"]


def test_the_hook_targets_the_versions_the_template_deploys(stack: Stack) -> None:
    environment = stack.state["functions"][HOOK]
    assert environment["API_FUNCTION_VERSION_ARN"] == stack.resource("ApiFunction", "Version")
    assert environment["AUTHORIZER_FUNCTION_VERSION_ARN"] == stack.resource("AuthorizerFunction", "Version")


def test_a_good_build_is_reported_succeeded(stack: Stack, deployment: Deployment) -> None:
    deployment.serve_api(deployment.good_api)
    answer, reports, ids = deployment.run_hook()
    assert reports == [HookReport(ids["DeploymentId"], ids["LifecycleEventHookExecutionId"], "Succeeded")], answer
    assert answer["status"] == "Succeeded"
    assert [(c["name"], c["ok"]) for c in answer["checks"]] == [
        ("health", True),
        ("authorizer", True),
        ("echo", True),
        ("key_revoked", True),
    ]
    assert smoke_keys(stack) and all(record.status == "revoked" for record in smoke_keys(stack))


def test_a_broken_build_is_reported_failed_and_its_key_revoked(stack: Stack, deployment: Deployment) -> None:
    deployment.serve_api(deployment.broken_api)
    answer, reports, ids = deployment.run_hook()
    assert reports == [HookReport(ids["DeploymentId"], ids["LifecycleEventHookExecutionId"], "Failed")]
    checks = {c["name"]: c for c in answer["checks"]}
    assert checks["health"]["ok"] and checks["authorizer"]["ok"]
    assert not checks["echo"]["ok"] and "function error" in checks["echo"]["detail"]
    assert checks["key_revoked"]["ok"]
    assert all(record.status == "revoked" for record in smoke_keys(stack))


def test_an_unreachable_version_is_reported_failed(deployment: Deployment) -> None:
    deployment.standin.functions.pop(deployment.api_arn, None)  # the ARN answers ResourceNotFoundException
    answer, reports, _ = deployment.run_hook()
    assert [r.status for r in reports] == ["Failed"]
    assert not {c["name"]: c for c in answer["checks"]}["health"]["ok"]


def test_the_hooks_lambda_and_codedeploy_calls_are_allowed_by_its_policy(stack: Stack, deployment: Deployment) -> None:
    deployment.serve_api(deployment.good_api)
    deployment.run_hook()
    owners = {env["AWS_ACCESS_KEY_ID"]: name for name, env in stack.state["functions"].items()}
    calls = [c for c in deployment.standin.recorder.calls() if owners.get(c["access_key"]) == HOOK]
    assert {c["action"] for c in calls} == {"lambda:InvokeFunction", "codedeploy:PutLifecycleEventHookExecutionStatus"}
    template = Template(load_template(ROOT / "template.yaml"), stack.state["parameters"])
    refused, _ = check(template, stack.state["resources"], {HOOK: calls})
    assert not refused
