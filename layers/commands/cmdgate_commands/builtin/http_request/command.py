"""The `http.request` declaration: settings and breaker store come from `context.services`."""

from __future__ import annotations

import time
from typing import Any

from cmdgate.commands import CommandContext, CommandError, command
from cmdgate_commands.builtin.http_request.params import MAX_TIMEOUT_S, HttpRequestParams

DEADLINE_MARGIN_S = 0.5  # left to the runner to record the execution


@command(
    "http.request",
    description="Make one HTTP request to an allowed destination and return its status, safe headers and body.",
    params=HttpRequestParams,
    timeout_s=MAX_TIMEOUT_S,
    idempotency="optional",
)
def http_request(params: HttpRequestParams, context: CommandContext) -> dict[str, Any]:
    """Send the request, following redirects by hand; return `{status, headers, body, ...}`."""
    # httpx and the fetch machinery load with the first http.request, not when the pack registers:
    # every function that loads the packs (api, worker, event processor) would pay for them.
    from cmdgate_commands.builtin.http_request import transport
    from cmdgate_commands.builtin.http_request.fetch import fetch
    from cmdgate_commands.builtin.http_request.result import result_of

    settings = context.services.settings
    store = context.services.breaker_store()
    budget_s = min(params.timeout_s, context.remaining_s() - DEADLINE_MARGIN_S)
    if budget_s <= 0:
        raise CommandError("No time is left for the request.", status=504, code="UPSTREAM_TIMEOUT")
    deadline = time.monotonic() + budget_s

    def remaining_s() -> float:
        return deadline - time.monotonic()

    landed = fetch(transport.http_client(), params, settings.http_request_allowed_hosts, store, remaining_s)
    return result_of(landed, settings.max_result_bytes)
