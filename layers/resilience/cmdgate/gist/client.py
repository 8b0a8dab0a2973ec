"""The Gist API client: one orchestrating class over a caller's `httpx.Client`.

One public call goes through these steps, in order:

1. the token comes from `token_provider()` (the caller caches it, e.g. Powertools
   `get_secret(..., max_age=...)`); it is sent only as the Authorization header and
   never logged or put in an exception;
2. a mutating call (POST, PATCH) takes the token's write lock, so the writes of one
   token are serial in this process;
3. if an earlier answer said the token is rate limited, the call waits for the
   limit to lift, or raises `GistRateLimited` at once (no request) when that wait
   is longer than `max_rate_limit_wait_s` or than the caller's remaining time;
4. attempts, under `cmdgate.retry.Retrier` (full jitter, the caller's deadline, an
   optional retry budget) on 5xx, timeouts, network errors and 422 "Gist cannot be
   updated."; each attempt passes the circuit breaker when one is given (5xx,
   timeouts and network errors count as its failures; 4xx and rate limits do not),
   and a write attempt first waits until `min_write_interval_s` has passed since the
   token's previous write started;
5. a 403/429 that is a rate limit (see `cmdgate.gist.limits`) blocks the token for
   the wait GitHub asks, and the call goes back to step 3 (at most
   `max_rate_limit_waits` times); an answer reporting `x-ratelimit-remaining: 0`
   blocks the token until `x-ratelimit-reset` too, so the next call does not
   spend a request on a certain 403;
6. the answer becomes a typed object, or an exception from `cmdgate.gist.exceptions`.

Retries apply to POST as to PATCH and GET: a create that timed out may still have
created its gist, so a retried create can leave an unused gist behind (the caller
would have retried anyway). PATCH is safe to repeat: it writes the same content.

A write called with `blind_retry=False` is retried only after an outcome that
proves GitHub did not apply it: a connect failure (ConnectError, ConnectTimeout,
PoolTimeout: nothing was sent), a rate-limit 403/429 and the 422 "Gist cannot be
updated." (refusals). After any other retryable outcome (a 5xx, a read or write
timeout, a broken connection) it raises `GistWriteUnconfirmed` at once, so the
caller can read the gist back, or list its gists, before writing again. The
breaker counts that attempt as a failure all the same.
"""

from __future__ import annotations

import json
import math
import random as _random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from aws_lambda_powertools import Logger
from pydantic import BaseModel, TypeAdapter, ValidationError

from cmdgate.breaker import CircuitBreaker
from cmdgate.gist.cache import LruCache
from cmdgate.gist.config import GistClientConfig
from cmdgate.gist.exceptions import (
    GistError,
    GistNotFound,
    GistRateLimited,
    GistRequestRejected,
    GistUnavailable,
    GistWriteUnconfirmed,
)
from cmdgate.gist.gate import TokenGate, gate_for
from cmdgate.gist.limits import classify_limit, parse_rate_limit
from cmdgate.gist.models import Gist, GistCommit, GistSummary, RateLimit
from cmdgate.retry import GiveUpReason, Retrier, RetryBudget, RetryPolicy

logger = Logger(child=True)

DEFAULT_BASE_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"

# GitHub refuses conditional headers on unsafe requests with 400; a caller's client
# defaults must not slip one in.
_CONDITIONAL_HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
_UNSAFE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Concurrent PATCHes of one gist can get this 422; GitHub's users report it passes on retry.
_RETRYABLE_422 = "gist cannot be updated"
_MAX_MESSAGE_CHARS = 200
# Network failures: no answer, or a broken one. Retried, and failures for the breaker.
_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# The transient errors that prove the request never left: a write that met one was not applied.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

_commits_adapter = TypeAdapter(list[GistCommit])
_summaries_adapter = TypeAdapter(list[GistSummary])
M = TypeVar("M", bound=BaseModel)


class LambdaContextLike(Protocol):
    """The part of a Lambda context the client reads."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left in this invocation."""
        ...


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, read whole (up to a size cap) so the connection goes back to the pool."""

    status: int
    headers: httpx.Headers
    content: bytes


def _no_deadline() -> float:
    return float("inf")


class GistClient:
    """GitHub Gist API calls with auth, retries, rate limits, write spacing, ETag and revision caches."""

    def __init__(
        self,
        http: httpx.Client,
        token_provider: Callable[[], str],
        *,
        base_url: str = DEFAULT_BASE_URL,
        config: GistClientConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        breaker: CircuitBreaker | None = None,
        wall_clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        remaining_s: Callable[[], float] | None = None,
        retry_budget: RetryBudget | None = None,
    ) -> None:
        self._http = http
        self._token_provider = token_provider
        self._base_url = base_url.rstrip("/")
        self.config = config or GistClientConfig()
        self._clock = clock  # spacing and blocks: monotonic
        self._sleep = sleep
        self._breaker = breaker
        self._wall_clock = wall_clock  # x-ratelimit-reset is epoch seconds
        self._random = random
        self._remaining_s = remaining_s or _no_deadline
        self._retry_budget = retry_budget
        self._rate_limit: RateLimit | None = None
        self._etags: LruCache[str, tuple[str, Gist]] = LruCache(self.config.etag_cache_size)
        self._revisions: LruCache[tuple[str, str], Gist] = LruCache(self.config.revision_cache_size)
        base = urlsplit(self._base_url)
        self._base_scheme = base.scheme
        self._raw_hosts = frozenset({(base.hostname or "").lower(), *(h.lower() for h in self.config.raw_hosts)})
        self._policy = RetryPolicy(
            max_attempts=self.config.max_attempts,
            base_s=self.config.base_backoff_s,
            cap_s=self.config.max_backoff_s,
            min_attempt_s=self.config.min_attempt_s,
            safety_margin_s=self.config.safety_margin_s,
        )

    # -- public -----------------------------------------------------------

    @property
    def rate_limit(self) -> RateLimit | None:
        """The primary rate limit as GitHub's last answer reported it (None before any answer)."""
        return self._rate_limit

    def register_lambda_context(self, context: LambdaContextLike) -> None:
        """Bound retries and rate-limit waits by this invocation's remaining time."""
        self._remaining_s = lambda: context.get_remaining_time_in_millis() / 1000.0

    def create_gist(
        self, files: Mapping[str, str], description: str, public: bool = False, *, blind_retry: bool = True
    ) -> Gist:
        """Create a gist holding `files` (name -> content); secret unless `public`.

        `blind_retry=False`: an attempt GitHub may have applied is not retried; it raises
        `GistWriteUnconfirmed` (find the gist with `list_gists` before creating another).
        """
        if not files:
            raise ValueError("a gist needs at least one file")
        for name, content in files.items():
            _check_file(name, content)
        body = {
            "description": description,
            "public": public,
            "files": {name: {"content": content} for name, content in files.items()},
        }
        answer = self._call(
            "create_gist", "POST", f"{self._base_url}/gists", json_body=body, write=True, blind_retry=blind_retry
        )
        return self._parse("create_gist", answer, Gist)

    def get_gist(self, gist_id: str) -> Gist:
        """The gist's current revision; a 304 to the conditional GET returns the cached object (no rate limit)."""
        url = f"{self._base_url}/gists/{_segment(gist_id)}"
        cached = self._etags.get(gist_id)
        headers = {"If-None-Match": cached[0]} if cached is not None else None
        answer = self._call("get_gist", "GET", url, headers=headers)
        if answer.status == 304:
            if cached is None:
                raise GistError("get_gist", "GitHub answered 304 to an unconditional request", status_code=304)
            return cached[1]
        gist = self._parse("get_gist", answer, Gist)
        etag = answer.headers.get("etag")
        if etag:
            self._etags.put(gist_id, (etag, gist))
        return gist

    def update_file(self, gist_id: str, filename: str, content: str, description: str | None = None) -> Gist:
        """Replace one file's content (PATCH, never conditional); returns the gist at its new revision."""
        return self.update_files(gist_id, {filename: content}, description)

    def update_files(
        self,
        gist_id: str,
        files: Mapping[str, str | None],
        description: str | None = None,
        *,
        blind_retry: bool = True,
    ) -> Gist:
        """Write many files in one PATCH (one revision); a None content deletes that file.

        Files not named are left as they are. Returns the gist at its new revision.
        `blind_retry=False`: an attempt GitHub may have applied is not retried; it raises
        `GistWriteUnconfirmed` (read the gist back before writing again).
        """
        if not files:
            raise ValueError("an update needs at least one file")
        changes: dict[str, dict[str, str] | None] = {}
        for name, content in files.items():
            if content is None:
                _check_filename(name)
                changes[name] = None  # GitHub's way to delete a file
            else:
                _check_file(name, content)
                changes[name] = {"content": content}
        body: dict[str, Any] = {"files": changes}
        if description is not None:
            body["description"] = description
        url = f"{self._base_url}/gists/{_segment(gist_id)}"
        try:
            answer = self._call("update_files", "PATCH", url, json_body=body, write=True, blind_retry=blind_retry)
        finally:
            # Whatever happened, the cached body may be stale now; its ETag would only cost a 200.
            self._etags.pop(gist_id)
        return self._parse("update_files", answer, Gist)

    def list_gists(self, per_page: int = 100, page: int = 1, since: datetime | None = None) -> list[GistSummary]:
        """One page of the token's own gists (secret ones included), as GitHub lists them.

        `since` (timezone-aware) keeps gists last updated after it. GitHub takes whole
        seconds, so it is sent rounded down and one second earlier: nothing updated at
        or after `since` is missed, a gist or two from just before it may be listed.
        Listed files carry names and sizes, no content: read a gist for its files.
        """
        if not 1 <= per_page <= 100 or page < 1:
            raise ValueError("per_page must be 1..100 and page >= 1")
        params: dict[str, int | str] = {"per_page": per_page, "page": page}
        if since is not None:
            if since.tzinfo is None or since.utcoffset() is None:
                raise ValueError("since must be timezone-aware")
            earlier = since.astimezone(UTC).replace(microsecond=0) - timedelta(seconds=1)
            params["since"] = earlier.strftime("%Y-%m-%dT%H:%M:%SZ")
        answer = self._call("list_gists", "GET", f"{self._base_url}/gists", params=params)
        try:
            return _summaries_adapter.validate_json(answer.content)
        except ValidationError:
            raise GistError("list_gists", "unexpected answer from GitHub", status_code=answer.status) from None

    def list_commits(self, gist_id: str, per_page: int = 100, page: int = 1) -> list[GistCommit]:
        """One page of the gist's revisions, newest first."""
        if not 1 <= per_page <= 100 or page < 1:
            raise ValueError("per_page must be 1..100 and page >= 1")
        url = f"{self._base_url}/gists/{_segment(gist_id)}/commits"
        answer = self._call("list_commits", "GET", url, params={"per_page": per_page, "page": page})
        try:
            return _commits_adapter.validate_json(answer.content)
        except ValidationError:
            raise GistError("list_commits", "unexpected answer from GitHub", status_code=answer.status) from None

    def get_revision(self, gist_id: str, sha: str) -> Gist:
        """The gist as it was at revision `sha`; revisions never change, so each is fetched once."""
        key = (gist_id, sha)
        cached = self._revisions.get(key)
        if cached is not None:
            return cached
        url = f"{self._base_url}/gists/{_segment(gist_id)}/{_segment(sha)}"
        gist = self._parse("get_revision", self._call("get_revision", "GET", url), Gist)
        self._revisions.put(key, gist)
        return gist

    def read_file(self, gist: Gist, filename: str) -> str:
        """The whole content of one file; a truncated one (over 1 MiB) is fetched from its raw_url."""
        file = gist.files.get(filename)
        if file is None:
            raise GistNotFound("read_file", "the gist has no file of that name")
        if not file.truncated and file.content is not None:
            return file.content
        if file.raw_url is None:
            raise GistError("read_file", "the file is truncated and has no raw_url")
        if not 0 <= file.size <= self.config.max_file_bytes:
            raise GistError("read_file", f"the file is {file.size} bytes, over max_file_bytes")
        self._check_raw_url(file.raw_url)
        # The size GitHub declared caps the download: anything longer is not this file.
        answer = self._call("read_file", "GET", file.raw_url, max_bytes=file.size)
        if len(answer.content) != file.size:
            raise GistError("read_file", f"raw_url gave {len(answer.content)} bytes, the gist says {file.size}")
        try:
            return answer.content.decode("utf-8")
        except UnicodeDecodeError:
            raise GistError("read_file", "raw_url content is not UTF-8") from None

    # -- one call: write lock, rate-limit blocks, retries -----------------

    def _call(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, int | str] | None = None,
        write: bool = False,
        blind_retry: bool = True,
        max_bytes: int | None = None,
    ) -> _Answer:
        token = self._token(operation)
        gate = gate_for(token)
        request_headers = {
            "Authorization": f"Bearer {token}",
            "Accept": MEDIA_TYPE,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": self.config.user_agent,
            **(headers or {}),
        }
        request = self._http.build_request(method, url, headers=request_headers, json=json_body, params=params)
        if method in _UNSAFE_METHODS:
            for name in _CONDITIONAL_HEADERS:
                if name in request.headers:
                    del request.headers[name]
        limit = max_bytes if max_bytes is not None else self.config.max_file_bytes
        with self._write_slot(operation, gate) if write else nullcontext():
            waits = 0
            while True:
                self._honour_block(operation, gate, write)
                answer = self._send_with_retries(
                    operation, request, token, gate, write=write, blind_retry=blind_retry, max_bytes=limit
                )
                message = _github_message(answer, token)
                signal = classify_limit(
                    answer.status,
                    answer.headers,
                    message,
                    wall_now=self._wall_clock(),
                    secondary_strikes=gate.secondary_strikes,
                    secondary_floor_s=self.config.secondary_limit_floor_s,
                )
                if signal is None:
                    if answer.status < 400:
                        gate.clear_strikes()
                        self._block_if_exhausted(gate, answer.headers)
                    self._raise_for_status(operation, answer, message)
                    return answer
                gate.block(self._clock(), signal.wait_s, writes_only=write and signal.kind == "secondary")
                if signal.kind == "secondary" and not signal.from_retry_after:
                    gate.strike()
                logger.warning(
                    "gist api rate limited",
                    extra={
                        "operation": operation,
                        "status": answer.status,
                        "limit": signal.kind,
                        "wait_s": round(signal.wait_s, 3),
                    },
                )
                waits += 1
                if waits > self.config.max_rate_limit_waits:
                    raise GistRateLimited(
                        operation,
                        signal.wait_s,
                        f"{signal.kind} rate limit still hit after {waits - 1} waits",
                        status_code=answer.status,
                        github_message=message,
                    )
                self._honour_block(operation, gate, write, status_code=answer.status, github_message=message)

    def _send_with_retries(
        self,
        operation: str,
        request: httpx.Request,
        token: str,
        gate: TokenGate,
        *,
        write: bool,
        blind_retry: bool,
        max_bytes: int,
    ) -> _Answer:
        # Only a write can be applied twice; a read is always safe to repeat.
        careful = write and not blind_retry
        attempts = 0
        gave_up: list[GiveUpReason] = []

        def attempt() -> _Answer:
            nonlocal attempts
            attempts += 1
            # Per attempt, outside the breaker: a retry late in the invocation gets a shorter timeout.
            request.extensions["timeout"] = self._timeout(operation).as_dict()
            if self._breaker is None:
                return self._attempt(request, gate, write=write, max_bytes=max_bytes)
            with self._breaker.guard() as guarded:
                answer = self._attempt(request, gate, write=write, max_bytes=max_bytes)
                if answer.status >= 500:
                    guarded.mark_failure()
                return answer

        def on_retry(attempts_made: int, delay: float, outcome: object) -> None:
            logger.warning(
                "gist api call retried",
                extra={
                    "operation": operation,
                    "attempt": attempts_made,
                    "delay_s": round(delay, 3),
                    **_describe(outcome),
                },
            )

        def is_retryable(outcome: object) -> bool:
            if careful and _may_have_landed(outcome):
                return False
            return _is_retryable(outcome, token)

        retrier = Retrier(
            self._policy,
            is_retryable=is_retryable,
            remaining_s=self._remaining_s,
            budget=self._retry_budget,
            sleep=self._sleep,
            random=self._random,
            on_retry=on_retry,
            on_give_up=lambda reason, outcome: gave_up.append(reason),
        )
        try:
            answer = retrier.call(attempt)
        except httpx.HTTPError as exc:
            # `from None`: httpx errors keep the request, headers (and token) included.
            if careful and _may_have_landed(exc):
                raise GistWriteUnconfirmed(operation, f"{type(exc).__name__} on attempt {attempts}") from None
            raise GistUnavailable(operation, _gave_up_text(type(exc).__name__, attempts, gave_up)) from None
        if careful and _may_have_landed(answer):
            raise GistWriteUnconfirmed(
                operation,
                f"GitHub answered {answer.status} on attempt {attempts}",
                status_code=answer.status,
                github_message=_github_message(answer, token),
            )
        if _is_retryable(answer, token):
            raise GistUnavailable(
                operation,
                _gave_up_text("GitHub kept failing", attempts, gave_up),
                status_code=answer.status,
                github_message=_github_message(answer, token),
            )
        return answer

    def _attempt(self, request: httpx.Request, gate: TokenGate, *, write: bool, max_bytes: int) -> _Answer:
        if write:
            # Spaced from the END of the previous write attempt (a retried write is a write too):
            # GitHub sees arrival times, and a slow previous answer must not shrink the gap.
            wait = gate.write_wait(self._clock(), self.config.min_write_interval_s)
            if wait > 0:
                self._sleep(wait)
        try:
            response = self._http.send(request, stream=True, follow_redirects=False)
        finally:
            if write:
                gate.record_write(self._clock())
        try:
            self._observe_rate_limit(response.headers)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    # Stop reading: a body over the cap is an error, not something to buffer.
                    return _Answer(response.status_code, response.headers, b"".join(chunks) + chunk[:1])
                chunks.append(chunk)
            return _Answer(response.status_code, response.headers, b"".join(chunks))
        finally:
            response.close()

    # -- waiting ----------------------------------------------------------

    @contextmanager
    def _write_slot(self, operation: str, gate: TokenGate) -> Iterator[None]:
        """Hold the token's write lock; give up with GistRateLimited if it cannot come in time."""
        timeout = self._remaining_s() - self.config.safety_margin_s - self.config.min_attempt_s
        if math.isinf(timeout):
            acquired = gate.write_lock.acquire()
        else:
            acquired = gate.write_lock.acquire(timeout=max(timeout, 0.0))
        if not acquired:
            raise GistRateLimited(
                operation, self.config.min_write_interval_s, "another write with this token is in progress"
            )
        try:
            yield
        finally:
            gate.write_lock.release()

    def _honour_block(
        self,
        operation: str,
        gate: TokenGate,
        write: bool,
        *,
        status_code: int | None = None,
        github_message: str | None = None,
    ) -> None:
        """Sleep out a rate limit seen earlier, or raise GistRateLimited if that is too long a wait."""
        wait = gate.blocked_for(self._clock(), write=write)
        if wait <= 0:
            return
        room = self._remaining_s() - self.config.safety_margin_s - self.config.min_attempt_s
        if wait > self.config.max_rate_limit_wait_s or wait > room:
            raise GistRateLimited(
                operation,
                wait,
                "rate limited by GitHub for longer than the call may wait",
                status_code=status_code,
                github_message=github_message,
            )
        logger.info("gist api waiting for rate limit", extra={"operation": operation, "wait_s": round(wait, 3)})
        self._sleep(wait)

    # -- helpers ----------------------------------------------------------

    def _block_if_exhausted(self, gate: TokenGate, headers: Mapping[str, str]) -> None:
        # That was the window's last request: the next one would only earn a 403 (and GitHub
        # warns that requests made while limited can get a token banned), so wait for the reset.
        seen = parse_rate_limit(headers, self._wall_clock())
        if seen is not None and seen.remaining == 0:
            wait = seen.reset_at - seen.observed_at
            if wait > 0:
                gate.block(self._clock(), wait, writes_only=False)

    def _token(self, operation: str) -> str:
        token = self._token_provider().strip()
        if not token:
            raise GistRequestRejected(operation, "no GitHub token is configured")
        return token

    def _timeout(self, operation: str) -> httpx.Timeout:
        config = self.config
        left = self._remaining_s() - config.safety_margin_s
        if left <= 0:
            raise GistUnavailable(operation, "no time left before the caller's deadline")
        # An attempt must not outlive the invocation: cap the read timeout by the time left.
        return httpx.Timeout(
            connect=min(config.connect_timeout_s, left),
            read=min(config.read_timeout_s, left),
            write=min(config.read_timeout_s, left),
            pool=min(config.connect_timeout_s, left),
        )

    def _observe_rate_limit(self, headers: Mapping[str, str]) -> None:
        seen = parse_rate_limit(headers, self._wall_clock())
        if seen is not None:
            self._rate_limit = seen

    def _check_raw_url(self, raw_url: str) -> None:
        # The token goes along with the raw request, so only to GitHub's own hosts.
        parts = urlsplit(raw_url)
        if (parts.hostname or "").lower() not in self._raw_hosts or parts.scheme not in {"https", self._base_scheme}:
            raise GistError("read_file", "raw_url points outside GitHub's hosts; not fetched")

    def _raise_for_status(self, operation: str, answer: _Answer, message: str | None) -> None:
        status = answer.status
        if 200 <= status < 300 or status == 304:
            return
        if status == 404:
            raise GistNotFound(operation, "not found", status_code=status, github_message=message)
        if 400 <= status < 500:
            raise GistRequestRejected(
                operation, "GitHub refused the request", status_code=status, github_message=message
            )
        raise GistError(operation, "unexpected answer from GitHub", status_code=status, github_message=message)

    @staticmethod
    def _parse(operation: str, answer: _Answer, model: type[M]) -> M:
        try:
            return model.model_validate_json(answer.content)
        except ValidationError:
            # `from None`: a validation error quotes the input, which holds the gist's content.
            raise GistError(operation, "unexpected answer from GitHub", status_code=answer.status) from None


def _segment(value: str) -> str:
    if not value:
        raise ValueError("gist ids and shas must not be empty")
    return quote(value, safe="")


def _check_filename(filename: str) -> None:
    if not filename or "/" in filename:
        raise ValueError("a file name must be non-empty and hold no '/'")


def _check_file(filename: str, content: str) -> None:
    _check_filename(filename)
    if not content:
        # GitHub deletes a file sent with empty content (or refuses it): never by accident.
        raise ValueError("file content must not be empty")


def _github_message(answer: _Answer, token: str) -> str | None:
    """GitHub's short `message` (first line, capped), with the token scrubbed just in case."""
    if answer.status < 400 or not answer.content:
        return None
    try:
        body = json.loads(answer.content)
    except ValueError:
        return None
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return None
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return first_line[:_MAX_MESSAGE_CHARS].replace(token, "***") or None


def _is_retryable(outcome: object, token: str) -> bool:
    if isinstance(outcome, _Answer):
        if outcome.status >= 500:
            return True
        message = _github_message(outcome, token) if outcome.status == 422 else None
        return message is not None and message.lower().startswith(_RETRYABLE_422)
    return isinstance(outcome, _TRANSIENT_ERRORS)


def _may_have_landed(outcome: object) -> bool:
    """A write met this outcome and GitHub may have applied it: a 5xx, or a failure after sending began."""
    if isinstance(outcome, _Answer):
        return outcome.status >= 500
    return isinstance(outcome, _TRANSIENT_ERRORS) and not isinstance(outcome, _NOT_SENT_ERRORS)


def _describe(outcome: object) -> dict[str, object]:
    if isinstance(outcome, _Answer):
        return {"status": outcome.status}
    return {"error": type(outcome).__name__}


def _gave_up_text(what: str, attempts: int, reasons: list[GiveUpReason]) -> str:
    reason = reasons[-1] if reasons else "max_attempts"
    return f"{what} after {attempts} attempt(s), gave up ({reason})"
