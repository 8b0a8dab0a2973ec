"""One dispatch POST to GitHub: breaker, retries only when nothing was sent, timeouts, GitHub's answers as errors.

A dispatch is not idempotent (sending it twice starts two runs), so an attempt is repeated only
after a connect failure, which proves the request never left; a 5xx or a timeout ends the call
with an error the caller can read, and counts as a failure for the host's breaker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from cmdgate.breaker import BreakerStore, CircuitOpen
from cmdgate.commands import CommandError, DependencyRefused, TransientCommandError
from cmdgate.retry import Retrier, RetryBudget, RetryPolicy
from cmdgate_commands.github import breakers

API_VERSION = "2022-11-28"
USER_AGENT = "cmdgate-github-pack/1"
MAX_ATTEMPT_S = 10.0
MAX_MESSAGE_CHARS = 200
RETRY_POLICY = RetryPolicy(max_attempts=3, base_s=0.2, cap_s=2.0, min_attempt_s=1.0, safety_margin_s=0.25)
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# Replaced by tests.
sleep: Callable[[float], None] = time.sleep


class GitHubUnavailable(DependencyRefused):
    """The API host's breaker is open, or GitHub rate-limited the token: nothing was dispatched."""


@lru_cache(maxsize=1)
def http_client() -> httpx.Client:
    """The client reused across invocations: no redirects, no proxies from the environment."""
    return httpx.Client(follow_redirects=False, trust_env=False, timeout=MAX_ATTEMPT_S)


@lru_cache(maxsize=1)
def retry_budget() -> RetryBudget:
    """Retries are at most 10 % of dispatches plus 0.2 a second, in this process."""
    return RetryBudget(ratio=0.1, min_per_s=0.2, max_tokens=10, initial_tokens=2)


def path(*segments: str) -> str:
    """`/repos/{owner}/...` with each segment percent-encoded (the params were validated already)."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def dispatch(
    client: httpx.Client,
    base_url: str,
    api_path: str,
    body: dict[str, Any],
    token: str,
    store: BreakerStore,
    remaining_s: Callable[[], float],
) -> None:
    """POST `body` to `base_url + api_path`; returns on 204 (or 200), raises a CommandError otherwise."""
    url = base_url.rstrip("/") + api_path
    host = urlsplit(url).netloc.lower()
    breaker = breakers.breaker_for(host, store)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": USER_AGENT,
    }

    def attempt() -> httpx.Response:
        timeout_s = min(MAX_ATTEMPT_S, remaining_s())
        if timeout_s <= 0:
            raise httpx.ReadTimeout("no time left")
        with breaker.guard() as guarded:
            response = client.post(url, json=body, headers=headers, timeout=timeout_s)
            if response.status_code in breakers.FAILURE_STATUSES:
                guarded.mark_failure()
            return response

    retrier = Retrier(
        RETRY_POLICY,
        is_retryable=lambda outcome: isinstance(outcome, _NOT_SENT),
        remaining_s=remaining_s,
        budget=retry_budget(),
        sleep=sleep,
    )
    try:
        response = retrier.call(attempt)
    except CircuitOpen as exc:
        raise GitHubUnavailable(
            f"GitHub ({host}) is failing; dispatches are paused for {exc.retry_after_s} s.",
            retry_after_s=exc.retry_after_s,
        ) from None
    except _NOT_SENT:
        raise TransientCommandError("Could not connect to GitHub.", code="UPSTREAM_UNREACHABLE") from None
    except httpx.TimeoutException:
        raise CommandError(
            "GitHub did not answer in time; the dispatch may or may not have happened.",
            status=504,
            code="UPSTREAM_TIMEOUT",
        ) from None
    except httpx.TransportError:
        raise CommandError("The connection to GitHub failed.", status=502, code="UPSTREAM_ERROR") from None
    _raise_for(response)


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status in (200, 204):
        return
    message = _message(response)
    if status in (403, 429) and (_retry_after(response) is not None or _exhausted(response)):
        wait = _retry_after(response) or _reset_wait(response)
        raise GitHubUnavailable(f"GitHub rate-limited the dispatch token: {message}", retry_after_s=wait)
    if status == 401:
        raise CommandError("GitHub refused the dispatch token.", status=502, code="UPSTREAM_AUTH_FAILED")
    if status in (403, 404):
        raise CommandError(
            f"GitHub answered {status}: {message} (is the repository or workflow right, and may the token see it?)",
            status=404 if status == 404 else 403,
            code="UPSTREAM_NOT_FOUND" if status == 404 else "UPSTREAM_FORBIDDEN",
        )
    if status == 422:
        raise CommandError(f"GitHub refused the dispatch: {message}", status=422, code="UPSTREAM_REJECTED")
    raise CommandError(f"GitHub answered {status}.", status=502, code="UPSTREAM_ERROR")


def _message(response: httpx.Response) -> str:
    """GitHub's error message (its own text, cut short), or the status's reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text = body.get("message") if isinstance(body, dict) else None
    return (str(text) if text else response.reason_phrase)[:MAX_MESSAGE_CHARS]


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return max(1, int(value)) if value.isdigit() else None


def _exhausted(response: httpx.Response) -> bool:
    return response.headers.get("x-ratelimit-remaining") == "0"


def _reset_wait(response: httpx.Response) -> int:
    reset = response.headers.get("x-ratelimit-reset", "")
    return max(1, int(reset) - int(time.time())) if reset.isdigit() else 60
