"""The hook's one duty to CodeDeploy: say whether the lifecycle event passed."""

from __future__ import annotations

from typing import Any, Literal

HookStatus = Literal["Succeeded", "Failed"]


def report_hook_status(client: Any, deployment_id: str, hook_execution_id: str, status: HookStatus) -> None:
    """PutLifecycleEventHookExecutionStatus: Failed stops the deployment before any traffic shifts."""
    client.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=hook_execution_id, status=status
    )
