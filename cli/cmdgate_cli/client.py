"""The API over httpx: every error answer becomes a CliError with the problem it carries."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from cmdgate_cli import __version__
from cmdgate_cli.config import KEY_ENV, Target
from cmdgate_cli.problems import CliError, ExitCode, Problem, exit_code_for_status, problem_from_response, usage_error

PAGE_LIMIT = 100
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,4096}")  # visible ASCII: a token68-ish bearer token


class Api:
    """One API, one key; `transport` lets tests answer in-process (httpx.MockTransport)."""

    def __init__(self, target: Target, timeout_s: float, transport: httpx.BaseTransport | None = None) -> None:
        self.url = target.url
        self._key = target.api_key
        headers = {"User-Agent": f"cmdgate-cli/{__version__}", "Accept": "application/json, application/problem+json"}
        self._http = httpx.Client(base_url=target.url, headers=headers, timeout=timeout_s, transport=transport)

    def __repr__(self) -> str:
        return f"Api(url={self.url!r})"

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        authenticated: bool = True,
        timeout_s: float | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one request; a 4xx/5xx answer (unless in `accept`) or a transport failure raises CliError."""
        sent = dict(headers or {})
        if authenticated:
            if not self._key:
                raise usage_error(
                    "No API key", f"Set {KEY_ENV} or run `cmdgate configure` to keep one in the config file."
                )
            if not _HEADER_SAFE.fullmatch(self._key):
                raise usage_error("API key is malformed", "It holds spaces or characters an HTTP header cannot carry.")
            sent["Authorization"] = f"Bearer {self._key}"
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        try:
            response = self._http.request(
                method, path, json=json, content=content, headers=sent, params=params, **extra
            )
        except httpx.TimeoutException:
            raise CliError(
                ExitCode.UNAVAILABLE, Problem(title="Timed out", detail=f"No answer from {self.url}.", code="TIMEOUT")
            ) from None
        except httpx.HTTPError as error:
            detail = f"{type(error).__name__} talking to {self.url}: {error}"
            if self._key:  # an httpx message may quote a header it refused
                detail = detail.replace(self._key, "<api key>")
            raise CliError(
                ExitCode.UNAVAILABLE, Problem(title="Cannot reach cmdgate", detail=detail, code="UNREACHABLE")
            ) from None
        if response.status_code >= 400 and response.status_code not in accept:
            raise CliError(exit_code_for_status(response.status_code), problem_from_response(response))
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return _json_of(self.request("GET", path, **kwargs))

    def pages(self, path: str, field: str, params: Mapping[str, str | int] | None = None) -> Iterator[Any]:
        """Every item of a paginated list, following `next_cursor`."""
        query: dict[str, str | int] = {**(params or {}), "limit": PAGE_LIMIT}
        while True:
            body = self.get_json(path, params=query)
            yield from body.get(field) or []
            cursor = body.get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CliError(
            ExitCode.UNAVAILABLE,
            Problem(
                title="Answer is not JSON",
                detail=f"{response.request.method} {response.request.url.path} answered {response.status_code} "
                "with a body that is not JSON.",
                code="NOT_JSON",
                status=response.status_code,
                request_id=response.headers.get("X-Request-Id"),
            ),
        ) from None


def segment(value: str) -> str:
    """`value` as one path segment: a `/` or `..` in an argument never reaches another route."""
    from urllib.parse import quote

    return quote(value, safe="") if value not in {".", ".."} else quote(value, safe="").replace(".", "%2E")
