"""CodeDeploy pre-traffic hook: smoke-test the new api and authorizer versions, then report to CodeDeploy."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from cmdgate import aws, tracing
from cmdgate.canary import LambdaInvoker, SmokeTargets, SmokeTest
from cmdgate.canary.events import ApiTarget
from cmdgate.canary.hook import handle_lifecycle_event
from cmdgate.wiring import services

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
# A cold new version answers within seconds; one attempt per call (the smoke test retries whole checks).
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


def smoke_test() -> SmokeTest:
    """The smoke test of the versions this hook was deployed with."""
    invoker = LambdaInvoker(boto3.session.Session().client("lambda", config=INVOKE_CONFIG))
    return SmokeTest(smoke_targets(dict(os.environ)), invoker, services().api_keys)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.set_correlation_id(event.get("DeploymentId") if isinstance(event, dict) else None)
    answer = handle_lifecycle_event(event, lambda: smoke_test().run(), aws.client("codedeploy"))
    logger.info("pre-traffic smoke test", extra=answer)
    metrics.add_metric(name="CanarySmokeFailed", unit=MetricUnit.Count, value=0 if answer["ok"] else 1)
    return answer
