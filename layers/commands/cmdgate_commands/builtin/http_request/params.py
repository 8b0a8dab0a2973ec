"""What a caller may ask of `http.request`: the params model, and which of its headers are secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TIMEOUT_S = 25.0

Method = Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
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
# Credentials: stored sealed (async) or redacted (sync) in the execution record, never logged.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
SECRET_HEADER_SUFFIXES = ("-key", "-token")
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def is_secret_header(name: str) -> bool:
    """Authorization, Proxy-Authorization, Cookie and any `*-Key` / `*-Token` header (any case)."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or lowered.endswith(SECRET_HEADER_SUFFIXES)


class HttpRequestParams(BaseModel):
    """One HTTP request."""

    model_config = ConfigDict(
        defer_build=True, extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    method: Method = "GET"
    url: str = Field(min_length=1, max_length=2048, description="http or https URL; checked against SSRF rules.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="No Host, Content-Length etc. Authorization, Cookie, *-Key and *-Token values are secret: "
        "never shown or logged, and stored encrypted for async runs only.",
    )
    json_body: Any = Field(default=None, alias="json", description="A JSON request body.")
    timeout_s: float = Field(
        default=10.0, gt=0, le=MAX_TIMEOUT_S, description="Overall time limit, redirects included."
    )

    def secret_paths(self) -> Iterator[tuple[str, ...]]:
        """Where the secrets are in `model_dump(mode="json")` (see `cmdgate.executions.secrets`)."""
        for name in self.headers:
            if is_secret_header(name):
                yield ("headers", name)

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
