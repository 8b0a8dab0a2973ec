"""`github` pack: run GitHub Actions workflows, with a token of their own.

- `github.workflow_dispatch` (owner, repo, workflow, ref, inputs): POST
  /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches;
- `github.repository_dispatch` (owner, repo, event_type, client_payload): POST
  /repos/{owner}/{repo}/dispatches.

GitHub counts dispatches against the same content-creation limits as gist writes, so the
token is its own Secrets Manager secret (`GITHUB_DISPATCH_TOKEN_SECRET_ARN`, template
parameter `GitHubDispatchTokenSecretArn`), never the state sync's gist token. The API base is
`GITHUB_API_URL` (empty: the gist API's, `GIST_API_URL`). Every call goes through `client`:
a circuit breaker per API host (5xx, timeouts and network errors count), retries with full
jitter only after a connect failure (a dispatch is not idempotent: a request that may have
reached GitHub is never sent again), and a timeout inside the command's own.
"""

from __future__ import annotations

from cmdgate_commands.github.commands import repository_dispatch, workflow_dispatch

__all__ = ["repository_dispatch", "workflow_dispatch"]
