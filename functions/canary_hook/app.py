"""CodeDeploy pre-traffic hook: smoke-test the new api and authorizer versions, then report to CodeDeploy."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from cmdgate import aws
from cmdgate.canary import LambdaInvoker, SmokeTargets, SmokeTest, report_hook_status
from cmdgate.canary.codedeploy import HookStatus
from cmdgate.canary.events import ApiTarget
from cmdgate.wiring import services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# A cold new version answers within seconds; one attempt, so a broken version fails fast.
INVOKE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2, read_timeout=30)


def smoke_targets(environ: dict[str, str]) -> SmokeTargets:
    """The versions to test, from the hook's environment (the template passes `!Ref <Function>.Version`)."""
    api_arn = environ["API_FUNCTION_VERSION_ARN"]
    _, _, _, region, account_id, *_ = api_arn.split(":")
    return SmokeTargets(
        api_function_arn=api_arn,
        authorizer_function_arn=environ["AUTHORIZER_FUNCTION_VERSION_ARN"],
        api=ApiTarget(region=region, account_id=account_id, api_id=environ["API_ID"], stage=environ["API_STAGE"]),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deployment_id = event.get("DeploymentId")
    hook_execution_id = event.get("LifecycleEventHookExecutionId")
    if not isinstance(deployment_id, str) or not isinstance(hook_execution_id, str):
        # Nothing to report to: CodeDeploy always sends both, so this is no deployment's hook.
        raise ValueError("not a CodeDeploy lifecycle event")
    logger.set_correlation_id(deployment_id)
    invoker = LambdaInvoker(boto3.session.Session().client("lambda", config=INVOKE_CONFIG))
    try:
        outcome = SmokeTest(smoke_targets(dict(os.environ)), invoker, services().api_keys).run().as_dict()
    except Exception as exc:  # noqa: BLE001 - a smoke test that cannot run is a failed one, reported at once
        outcome = {"ok": False, "checks": [], "error_class": type(exc).__name__}
    status: HookStatus = "Succeeded" if outcome["ok"] else "Failed"
    logger.info("pre-traffic smoke test", extra={"status": status, **outcome})
    metrics.add_metric(name="CanarySmokeFailed", unit=MetricUnit.Count, value=0 if outcome["ok"] else 1)
    report_hook_status(aws.client("codedeploy"), deployment_id, hook_execution_id, status)
    return {"status": status, **outcome}
