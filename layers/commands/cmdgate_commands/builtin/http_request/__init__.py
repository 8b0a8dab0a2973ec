"""`http.request`: one HTTP call to an allowed destination, with an SSRF guard, retries and a breaker per host.

- every URL, the first and each redirect target (at most 5, followed by hand),
  passes `cmdgate.ssrf.check_url` against `Settings.http_request_allowed_hosts`
  (`host[:port]` entries, parsed once at start); the connection goes to the
  address that was checked (pinned), with `Host` and TLS SNI set to the URL's host
  (`fetch`, `transport`);
- each host:port has a `CircuitBreaker` over the store the composition root lends
  (`context.services.breaker_store()`, the control table); an open breaker answers
  503 DEPENDENCY_UNAVAILABLE at once (`breakers`);
- idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) are retried with
  `cmdgate.retry` on connect errors, timeouts and 502/503/504; POST and PATCH never;
- everything ends before `min(timeout_s, context.remaining_s() - margin)`;
- at most 1 MiB of the body is read (no decompression: `Accept-Encoding: identity`),
  and the result is cut to fit the execution's result limit (`result`);
- credential headers (Authorization, Cookie, `*-Key`, `*-Token`) are secret params
  (`params.HttpRequestParams.secret_paths`): sealed or redacted in execution records.
"""

from __future__ import annotations

from cmdgate_commands.builtin.http_request.command import http_request
from cmdgate_commands.builtin.http_request.params import HttpRequestParams

__all__ = ["HttpRequestParams", "http_request"]
