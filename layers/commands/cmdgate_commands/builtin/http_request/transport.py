"""One HTTP exchange with a checked destination: pinned address, Host and SNI, a capped raw read."""

from __future__ import annotations

import http.cookiejar
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx

from cmdgate.ssrf import CheckedUrl
from cmdgate_commands.builtin.http_request.params import MAX_TIMEOUT_S

MAX_READ_BYTES = 1024 * 1024
USER_AGENT = "cmdgate-http-request/1"


class OutOfTime(Exception):
    """The overall deadline passed."""


@dataclass(frozen=True)
class Fetched:
    """A response as read: status, headers, at most MAX_READ_BYTES of the raw body."""

    status: int
    headers: httpx.Headers
    content: bytes
    truncated: bool


@lru_cache(maxsize=1)
def http_client() -> httpx.Client:
    """The client reused across invocations: no redirects, no proxies from the environment, no cookie jar."""
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(follow_redirects=False, trust_env=False, cookies=no_cookies, timeout=MAX_TIMEOUT_S)


def send(
    client: httpx.Client,
    checked: CheckedUrl,
    method: str,
    headers: dict[str, str],
    body: Any,
    remaining_s: Callable[[], float],
) -> Fetched:
    """Send to the pinned address with the URL's Host (and SNI); read the raw body up to the cap."""
    timeout_s = remaining_s()
    if timeout_s <= 0:
        raise OutOfTime()
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
                raise OutOfTime()
            room = MAX_READ_BYTES - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                truncated = True
                break
            chunks.append(chunk)
            size += len(chunk)
        return Fetched(response.status_code, httpx.Headers(response.headers), b"".join(chunks), truncated)
    finally:
        response.close()


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as sent (no decompression); an in-memory response (httpx.MockTransport) is already read."""
    if response.is_stream_consumed:
        yield response.content
        return
    yield from response.iter_raw()
