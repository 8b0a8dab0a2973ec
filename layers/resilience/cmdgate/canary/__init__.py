"""The deployment's pre-traffic smoke test: a new version's health and an `echo` round trip, reported to CodeDeploy."""

from cmdgate.canary.codedeploy import report_hook_status
from cmdgate.canary.invoker import FunctionAnswer, FunctionInvoker, LambdaInvoker
from cmdgate.canary.smoke import CheckResult, SmokeReport, SmokeTargets, SmokeTest

__all__ = [
    "CheckResult",
    "FunctionAnswer",
    "FunctionInvoker",
    "LambdaInvoker",
    "SmokeReport",
    "SmokeTargets",
    "SmokeTest",
    "report_hook_status",
]
