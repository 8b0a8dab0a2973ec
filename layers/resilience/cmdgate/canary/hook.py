"""One CodeDeploy lifecycle event: run the smoke test, and always give CodeDeploy a verdict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmdgate.canary.codedeploy import HookStatus, report_hook_status
from cmdgate.canary.smoke import SmokeReport


class NotALifecycleEvent(ValueError):
    """The event names no deployment: there is nobody to report to."""


def handle_lifecycle_event(event: Any, smoke_test: Callable[[], SmokeReport], codedeploy: Any) -> dict[str, Any]:
    """Run `smoke_test` and report Succeeded or Failed; a smoke test that cannot run is a failed one."""
    deployment_id = event.get("DeploymentId") if isinstance(event, dict) else None
    hook_execution_id = event.get("LifecycleEventHookExecutionId") if isinstance(event, dict) else None
    if not isinstance(deployment_id, str) or not isinstance(hook_execution_id, str):
        raise NotALifecycleEvent("not a CodeDeploy lifecycle event")
    try:
        outcome = smoke_test().as_dict()
    except Exception as exc:  # noqa: BLE001 - reported at once, so the deployment stops now, not at the hook's timeout
        outcome = {"ok": False, "checks": [], "error_class": type(exc).__name__}
    status: HookStatus = "Succeeded" if outcome["ok"] else "Failed"
    report_hook_status(codedeploy, deployment_id, hook_execution_id, status)
    return {"deployment_id": deployment_id, "status": status, **outcome}
