"""`http.request`: one HTTP call to an allowed destination, with an SSRF guard, retries and a breaker per host.

- every URL, the first and each redirect target (at most 5, followed by hand),
  passes `cmdgate.ssrf.check_url`; the connection goes to the address that was
  checked (pinned), with `Host` and TLS SNI set to the URL's host;
- each host:port has a `CircuitBreaker` shared by all instances (control table
  `CONTROL_TABLE`, or in-process when it is unset); an open breaker answers
  503 DEPENDENCY_UNAVAILABLE at once;
- idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) are retried with
  `cmdgate.retry` on connect errors, timeouts and 502/503/504; POST and PATCH never;
- everything ends before `min(timeout_s, context.remaining_s() - margin)`;
- at most 1 MiB of the body is read (no decompression: `Accept-Encoding: identity`),
  and the result is cut to fit the execution's result limit.

The allowlist is `HTTP_REQUEST_ALLOWED_HOSTS` (comma-separated hosts or `*.suffix`),
read at call time by `allowed_hosts()`; it is meant to move into `cmdgate.config`.
"""

from __future__ import annotations

import base64
import codecs
import http.cookiejar
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cmdgate import aws
from cmdgate.breaker import (
    BreakerConfig,
    BreakerStore,
    CircuitBreaker,
    CircuitOpen,
    DynamoDBBreakerStore,
    InMemoryBreakerStore,
)
from cmdgate.commands import CommandContext, CommandError, DependencyRefused, TransientCommandError, command
from cmdgate.config import get_settings
from cmdgate.retry import Retrier, RetryBudget, RetryPolicy
from cmdgate.ssrf import CheckedUrl, check_url

ALLOWED_HOSTS_ENV = "HTTP_REQUEST_ALLOWED_HOSTS"
CONTROL_TABLE_ENV = "CONTROL_TABLE"
MAX_TIMEOUT_S = 25.0
MAX_REDIRECTS = 5
MAX_READ_BYTES = 1024 * 1024
DEADLINE_MARGIN_S = 0.5  # left to the runner to record the execution
RESULT_HEADROOM_BYTES = 1024
USER_AGENT = "cmdgate-http-request/1"

Method = Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})  # RFC 9110 9.2.2
RETRY_STATUSES = frozenset({502, 503, 504})
BREAKER_FAILURE_STATUSES = frozenset({500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
FORBIDDEN_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "accept-encoding",  # we read raw bytes and never decompress
    }
)
CROSS_ORIGIN_DROPPED_HEADERS = frozenset({"authorization", "cookie"})
SAFE_RESPONSE_HEADERS = frozenset(
    {
        "age",
        "cache-control",
        "content-encoding",
        "content-language",
        "content-length",
        "content-type",
        "date",
        "etag",
        "expires",
        "last-modified",
        "location",
        "retry-after",
        "vary",
        "x-request-id",
        "request-id",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    }
)
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TEXT_TYPES = ("application/xml", "application/javascript", "application/x-www-form-urlencoded")

RETRY_POLICY = RetryPolicy(max_attempts=3, base_s=0.2, cap_s=2.0, min_attempt_s=1.0, safety_margin_s=0.25)

# Replaced by tests; read each time a request starts.
sleep: Callable[[float], None] = time.sleep


class HttpRequestParams(BaseModel):
    """One HTTP request."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    method: Method = "GET"
    url: str = Field(min_length=1, max_length=2048, description="http or https URL; checked against SSRF rules.")
    headers: dict[str, str] = Field(default_factory=dict, max_length=32, description="No Host, Content-Length etc.")
    json_body: Any = Field(default=None, alias="json", description="A JSON request body.")
    timeout_s: float = Field(
        default=10.0, gt=0, le=MAX_TIMEOUT_S, description="Overall time limit, redirects included."
    )

    @field_validator("headers")
    @classmethod
    def _headers_are_safe(cls, headers: dict[str, str]) -> dict[str, str]:
        total = 0
        for name, value in headers.items():
            if not name or len(name) > 256 or not set(name) <= _TOKEN_CHARS:
                raise ValueError("header names must be HTTP tokens of at most 256 characters")
            if name.lower() in FORBIDDEN_REQUEST_HEADERS or name.lower().startswith("proxy-"):
                raise ValueError(f"header {name!r} may not be set")
            if len(value) > 8192 or any(c in value for c in "\r\n\0"):
                raise ValueError("header values must be single lines of at most 8192 characters")
            total += len(name) + len(value)
        if total > 16384:
            raise ValueError("headers may total at most 16384 characters")
        return headers

    @model_validator(mode="after")
    def _body_fits_method(self) -> HttpRequestParams:
        if self.json_body is not None and self.method in ("GET", "HEAD"):
            raise ValueError(f"a {self.method} request has no body")
        return self


class UpstreamUnavailable(DependencyRefused):
    """The host's breaker is open: 503 DEPENDENCY_UNAVAILABLE; `retry_after_s` says when to try again."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"The destination is failing; calls to it are paused for {retry_after_s} s.",
            retry_after_s=retry_after_s,
        )


class _OutOfTime(Exception):
    """The overall deadline passed."""


@dataclass(frozen=True)
class _Fetched:
    status: int
    headers: httpx.Headers
    content: bytes
    truncated: bool


# -- seams (module-level factories; tests monkeypatch them) -------------------


def allowed_hosts() -> frozenset[str]:
    """The allowlist from HTTP_REQUEST_ALLOWED_HOSTS, read at call time."""
    raw = os.environ.get(ALLOWED_HOSTS_ENV, "")
    return frozenset(entry.strip() for entry in raw.split(",") if entry.strip())


@lru_cache(maxsize=1)
def http_client() -> httpx.Client:
    """The client reused across invocations: no redirects, no proxies from the environment, no cookie jar."""
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(follow_redirects=False, trust_env=False, cookies=no_cookies, timeout=MAX_TIMEOUT_S)


def breaker_store() -> BreakerStore:
    """The control table named by CONTROL_TABLE, or this process's memory when it is unset."""
    table = os.environ.get(CONTROL_TABLE_ENV, "")
    return _dynamodb_store(table) if table else _memory_store()


@lru_cache(maxsize=4)
def _dynamodb_store(table: str) -> BreakerStore:
    return DynamoDBBreakerStore(aws.client("dynamodb"), table)


@lru_cache(maxsize=1)
def _memory_store() -> BreakerStore:
    return InMemoryBreakerStore()


def _transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError)


def breaker_config() -> BreakerConfig:
    """Breaker settings for one destination host."""
    return BreakerConfig(
        failure_rate_threshold=0.5,
        min_calls=10,
        window_s=60,
        bucket_s=10,
        open_s=30,
        refresh_s=5,
        is_failure=_transport_failure,
    )


@lru_cache(maxsize=1)
def retry_budget() -> RetryBudget:
    """The retry budget of this process: retries are at most 10 % of requests plus 0.2 a second."""
    return RetryBudget(ratio=0.1, min_per_s=0.2, max_tokens=10, initial_tokens=2)


_breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()
_breakers_lock = threading.Lock()
MAX_CACHED_BREAKERS = 256


def breaker_for(checked: CheckedUrl) -> CircuitBreaker:
    """The breaker of the URL's host and port (kept for reuse; least recently used dropped first)."""
    name = f"http:{checked.host}:{checked.port}"
    store = breaker_store()
    with _breakers_lock:
        breaker = _breakers.get(name)
        if breaker is None or breaker.store is not store:
            breaker = CircuitBreaker(name, store, breaker_config())
            _breakers[name] = breaker
        _breakers.move_to_end(name)
        while len(_breakers) > MAX_CACHED_BREAKERS:
            _breakers.popitem(last=False)
        return breaker


# -- the command --------------------------------------------------------------


@command(
    "http.request",
    description="Make one HTTP request to an allowed destination and return its status, safe headers and body.",
    params=HttpRequestParams,
    timeout_s=MAX_TIMEOUT_S,
    idempotency="optional",
)
def http_request(params: HttpRequestParams, context: CommandContext) -> dict[str, Any]:
    """Send the request, following redirects by hand; return `{status, headers, body, ...}`."""
    allowed = allowed_hosts()
    budget_s = min(params.timeout_s, context.remaining_s() - DEADLINE_MARGIN_S)
    if budget_s <= 0:
        raise CommandError("No time is left for the request.", status=504, code="UPSTREAM_TIMEOUT")
    deadline = time.monotonic() + budget_s

    def remaining_s() -> float:
        return deadline - time.monotonic()

    client = http_client()
    method: str = params.method
    body = params.json_body
    headers = dict(params.headers)
    url = params.url
    for redirects in range(MAX_REDIRECTS + 1):
        checked = check_url(url, allowed)
        fetched = _fetch_with_retries(client, checked, method, headers, body, remaining_s)
        location = fetched.headers.get("location") if fetched.status in REDIRECT_STATUSES else None
        if not location:
            return _result(fetched, checked, redirects)
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
            headers = {k: v for k, v in headers.items() if k.lower() not in CROSS_ORIGIN_DROPPED_HEADERS}
        url = str(target)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_with_retries(
    client: httpx.Client,
    checked: CheckedUrl,
    method: str,
    headers: dict[str, str],
    body: Any,
    remaining_s: Callable[[], float],
) -> _Fetched:
    breaker = breaker_for(checked)

    def attempt() -> _Fetched:
        with breaker.guard() as guarded:
            fetched = _send(client, checked, method, headers, body, remaining_s)
            if fetched.status in BREAKER_FAILURE_STATUSES:
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
    except (httpx.TimeoutException, _OutOfTime):
        raise CommandError("The destination did not answer in time.", status=504, code="UPSTREAM_TIMEOUT") from None
    except httpx.TransportError:
        raise CommandError("The connection to the destination failed.", status=502, code="UPSTREAM_ERROR") from None


def _is_retryable(outcome: object) -> bool:
    if isinstance(outcome, _Fetched):
        return outcome.status in RETRY_STATUSES
    return isinstance(outcome, httpx.ConnectError | httpx.TimeoutException)


def _never(outcome: object) -> bool:
    return False


def _send(
    client: httpx.Client,
    checked: CheckedUrl,
    method: str,
    headers: dict[str, str],
    body: Any,
    remaining_s: Callable[[], float],
) -> _Fetched:
    timeout_s = remaining_s()
    if timeout_s <= 0:
        raise _OutOfTime()
    request_headers = httpx.Headers(headers)  # case-insensitive: a caller's user-agent replaces ours
    request_headers.setdefault("User-Agent", USER_AGENT)
    request_headers["Host"] = checked.host_header
    request_headers["Accept-Encoding"] = "identity"
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout_s).as_dict()}
    if checked.url.scheme == "https":
        extensions["sni_hostname"] = checked.host
        # The pool is keyed by address, not by name: never reuse a TLS connection made for another name.
        request_headers["Connection"] = "close"
    request = httpx.Request(method, checked.pinned_url, headers=request_headers, json=body, extensions=extensions)
    response = client.send(request, stream=True, follow_redirects=False)
    try:
        chunks: list[bytes] = []
        size = 0
        truncated = False
        for chunk in _raw_chunks(response):
            if remaining_s() <= 0:
                raise _OutOfTime()
            room = MAX_READ_BYTES - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                truncated = True
                break
            chunks.append(chunk)
            size += len(chunk)
        return _Fetched(response.status_code, httpx.Headers(response.headers), b"".join(chunks), truncated)
    finally:
        response.close()


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as sent (no decompression); an in-memory response (httpx.MockTransport) is already read."""
    if response.is_stream_consumed:
        yield response.content
        return
    yield from response.iter_raw()


# -- the result ---------------------------------------------------------------


def _result(fetched: _Fetched, checked: CheckedUrl, redirects: int) -> dict[str, Any]:
    headers = {name.lower(): value for name, value in fetched.headers.items() if name.lower() in SAFE_RESPONSE_HEADERS}
    body, encoding = _body(fetched)
    result: dict[str, Any] = {
        "status": fetched.status,
        "headers": headers,
        "body": body,
        "body_encoding": encoding,
        "truncated": fetched.truncated,
        "url": str(checked.url),
        "redirects": redirects,
    }
    return _fit(result, fetched, get_settings().max_result_bytes - RESULT_HEADROOM_BYTES)


def _body(fetched: _Fetched) -> tuple[Any, str]:
    content_type, _, parameters = fetched.headers.get("content-type", "").partition(";")
    content_type = content_type.strip().lower()
    if fetched.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return base64.b64encode(fetched.content).decode("ascii"), "base64"
    charset = _charset(parameters)
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if is_json and not fetched.truncated and fetched.content:
        try:
            return json.loads(fetched.content.decode(charset)), "json"
        except (ValueError, UnicodeDecodeError):
            pass
    if not content_type or is_json or content_type.startswith("text/") or content_type in _TEXT_TYPES:
        return fetched.content.decode(charset, errors="replace"), "text"
    if content_type.endswith("+xml"):
        return fetched.content.decode(charset, errors="replace"), "text"
    return base64.b64encode(fetched.content).decode("ascii"), "base64"


def _charset(parameters: str) -> str:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _fit(result: dict[str, Any], fetched: _Fetched, limit: int) -> dict[str, Any]:
    """Cut the body until the JSON-encoded result is at most `limit` bytes."""
    over = _encoded_size(result) - limit
    if over <= 0:
        return result
    if result["body_encoding"] == "json":
        result["body"], result["body_encoding"] = fetched.content.decode("utf-8", errors="replace"), "text"
    result["truncated"] = True
    if result["body_encoding"] == "base64":
        raw = fetched.content
        while over > 0 and raw:
            raw = raw[: max(0, len(raw) - (over * 3 // 4 + 3))]
            result["body"] = base64.b64encode(raw).decode("ascii")
            over = _encoded_size(result) - limit
        return result
    text: str = result["body"]
    while over > 0 and text:
        text = text[: max(0, len(text) - over)]  # every character costs at least one byte
        result["body"] = text
        over = _encoded_size(result) - limit
    return result


def _encoded_size(result: dict[str, Any]) -> int:
    return len(json.dumps(result, separators=(",", ":")).encode("utf-8"))
