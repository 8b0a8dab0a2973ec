"""Fetching a URL: every hop SSRF-checked, redirects followed by hand, retries and breakers per hop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx

from cmdgate.breaker import BreakerStore, CircuitOpen
from cmdgate.commands import CommandError, DependencyRefused, TransientCommandError
from cmdgate.hosts import HostAllowlist
from cmdgate.retry import Retrier, RetryBudget, RetryPolicy
from cmdgate.ssrf import CheckedUrl, check_url
from cmdgate_commands.builtin.http_request import breakers, transport
from cmdgate_commands.builtin.http_request.params import HttpRequestParams, is_secret_header
from cmdgate_commands.builtin.http_request.transport import Fetched, OutOfTime

MAX_REDIRECTS = 5
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})  # RFC 9110 9.2.2
RETRY_STATUSES = frozenset({502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_POLICY = RetryPolicy(max_attempts=3, base_s=0.2, cap_s=2.0, min_attempt_s=1.0, safety_margin_s=0.25)

# Replaced by tests; read each time a request starts.
sleep: Callable[[float], None] = time.sleep


class UpstreamUnavailable(DependencyRefused):
    """The host's breaker is open: 503 DEPENDENCY_UNAVAILABLE; `retry_after_s` says when to try again."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"The destination is failing; calls to it are paused for {retry_after_s} s.",
            retry_after_s=retry_after_s,
        )


@dataclass(frozen=True)
class Landed:
    """The final response, the URL that gave it and how many redirects led there."""

    fetched: Fetched
    checked: CheckedUrl
    redirects: int


@lru_cache(maxsize=1)
def retry_budget() -> RetryBudget:
    """The retry budget of this process: retries are at most 10 % of requests plus 0.2 a second."""
    return RetryBudget(ratio=0.1, min_per_s=0.2, max_tokens=10, initial_tokens=2)


def fetch(
    client: httpx.Client,
    request: HttpRequestParams,
    allowed: HostAllowlist,
    store: BreakerStore,
    remaining_s: Callable[[], float],
) -> Landed:
    """Send `request`, following at most MAX_REDIRECTS redirects (which may change the method, body,
    headers and URL), each target checked again."""
    method: str = request.method
    url, headers, body = request.url, dict(request.headers), request.json_body
    for redirects in range(MAX_REDIRECTS + 1):
        checked = check_url(url, allowed)
        fetched = _fetch_with_retries(client, checked, method, headers, body, store, remaining_s)
        location = fetched.headers.get("location") if fetched.status in REDIRECT_STATUSES else None
        if not location:
            return Landed(fetched, checked, redirects)
        if redirects == MAX_REDIRECTS:
            raise CommandError(f"More than {MAX_REDIRECTS} redirects.", status=502, code="TOO_MANY_REDIRECTS")
        try:
            target = checked.url.join(location)
        except (httpx.InvalidURL, ValueError):
            raise CommandError("The redirect location is malformed.", status=502, code="BAD_REDIRECT") from None
        if fetched.status == 303 or (fetched.status in (301, 302) and method == "POST"):
            method = "GET" if method != "HEAD" else "HEAD"
            body = None
        if (target.scheme, target.host, target.port) != (checked.url.scheme, checked.url.host, checked.url.port):
            # Credentials never follow a redirect to another origin: every header that counts as secret.
            headers = {k: v for k, v in headers.items() if not is_secret_header(k)}
        url = str(target)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_with_retries(
    client: httpx.Client,
    checked: CheckedUrl,
    method: str,
    headers: dict[str, str],
    body: Any,
    store: BreakerStore,
    remaining_s: Callable[[], float],
) -> Fetched:
    breaker = breakers.breaker_for(checked, store)

    def attempt() -> Fetched:
        with breaker.guard() as guarded:
            fetched = transport.send(client, checked, method, headers, body, remaining_s)
            if fetched.status in breakers.FAILURE_STATUSES:
                guarded.mark_failure()
            return fetched

    retrier = Retrier(
        RETRY_POLICY,
        is_retryable=_is_retryable if method in IDEMPOTENT_METHODS else _never,
        remaining_s=remaining_s,
        budget=retry_budget(),
        sleep=sleep,  # looked up per request, so tests can replace it
    )
    try:
        return retrier.call(attempt)
    except CircuitOpen as exc:
        raise UpstreamUnavailable(exc.retry_after_s) from None
    except (httpx.ConnectError, httpx.ConnectTimeout):
        raise TransientCommandError("Could not connect to the destination.", code="UPSTREAM_UNREACHABLE") from None
    except (httpx.TimeoutException, OutOfTime):
        raise CommandError("The destination did not answer in time.", status=504, code="UPSTREAM_TIMEOUT") from None
    except httpx.TransportError:
        raise CommandError("The connection to the destination failed.", status=502, code="UPSTREAM_ERROR") from None


def _is_retryable(outcome: object) -> bool:
    if isinstance(outcome, Fetched):
        return outcome.status in RETRY_STATUSES
    return isinstance(outcome, httpx.ConnectError | httpx.TimeoutException)


def _never(outcome: object) -> bool:
    return False
