"""The github pack's declarations: the token and API base come from settings, breakers from `context.services`."""

from __future__ import annotations

import time
from typing import Any

from cmdgate.commands import CommandContext, CommandError, command
from cmdgate_commands.github.params import RepositoryDispatchParams, WorkflowDispatchParams

DEADLINE_MARGIN_S = 0.5  # left to the runner to record the execution
TIMEOUT_S = 15.0


def _send(context: CommandContext, segments: tuple[str, ...], body: dict[str, Any]) -> None:
    """POST `body` to the API path of `segments` (each quoted by the client)."""
    # The GitHub client (and httpx with it) loads when a command runs, not when the pack registers:
    # every function that loads the packs would pay for it.
    from cmdgate_commands.github import client

    settings = context.services.settings
    if not settings.github_dispatch_token_secret_arn:
        raise CommandError(
            "The github pack has no token: set the template parameter GitHubDispatchTokenSecretArn.",
            status=503,
            code="COMMAND_NOT_CONFIGURED",
        )
    token = context.services.secret(settings.github_dispatch_token_secret_arn)
    deadline = time.monotonic() + context.remaining_s() - DEADLINE_MARGIN_S
    base_url = settings.github_api_url or settings.gist_api_url
    client.dispatch(
        client.http_client(),
        base_url,
        client.path(*segments),
        body,
        token,
        context.services.breaker_store(),
        lambda: deadline - time.monotonic(),
    )


@command(
    "github.workflow_dispatch",
    description="Start a GitHub Actions workflow run (workflow_dispatch) on a ref, with inputs.",
    params=WorkflowDispatchParams,
    timeout_s=TIMEOUT_S,
)
def workflow_dispatch(params: WorkflowDispatchParams, context: CommandContext) -> dict[str, Any]:
    """POST .../actions/workflows/{workflow}/dispatches; GitHub answers 204 and starts the run."""
    segments = ("repos", params.owner, params.repo, "actions", "workflows", params.workflow, "dispatches")
    body: dict[str, Any] = {"ref": params.ref}
    if params.inputs:
        body["inputs"] = params.inputs
    _send(context, segments, body)
    return {
        "dispatched": True,
        "owner": params.owner,
        "repo": params.repo,
        "workflow": params.workflow,
        "ref": params.ref,
    }


@command(
    "github.repository_dispatch",
    description="Send a repository_dispatch event (event_type, client_payload) to a GitHub repository.",
    params=RepositoryDispatchParams,
    timeout_s=TIMEOUT_S,
)
def repository_dispatch(params: RepositoryDispatchParams, context: CommandContext) -> dict[str, Any]:
    """POST /repos/{owner}/{repo}/dispatches; GitHub answers 204 and triggers the workflows listening for it."""
    body = {"event_type": params.event_type, "client_payload": params.client_payload}
    _send(context, ("repos", params.owner, params.repo, "dispatches"), body)
    return {"dispatched": True, "owner": params.owner, "repo": params.repo, "event_type": params.event_type}
