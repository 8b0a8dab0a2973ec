"""Faults injected into API answers for chaos tests: 502, slow answers, 429 or 403, lost answers.

"502", "timeout", "429" and "403" hit a request before it is handled: nothing is applied. "429"
and "403" are the secondary rate limit's two forms (GitHub documents both), with Retry-After.
"lost" and "lost_timeout" hit it after: the request is handled as usual (a write
lands, a revision is committed, the rate limit is charged), then its answer is
lost, as when a proxy or the network drops it: "lost" replaces the answer with a
502 page, "lost_timeout" holds the answer back `delay_s` so the client times out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from werkzeug.wrappers import Request, Response

from cmdgate_local.gist_server.responses import DOC_SECONDARY, error

FaultMode = Literal["502", "timeout", "429", "403", "lost", "lost_timeout", "none"]
FAULT_MODES: dict[str, FaultMode] = {
    "502": "502",
    "timeout": "timeout",
    "429": "429",
    "403": "403",
    "lost": "lost",
    "lost_timeout": "lost_timeout",
    "none": "none",
}


def bad_gateway() -> Response:
    """The HTML page GitHub's front end gives for a 502."""
    return Response(
        "<html><head><title>502 Bad Gateway</title></head><body>\n"
        "<h1>502 Bad Gateway</h1>\n"
        "<p>The server returned an invalid or incomplete response.</p>\n"
        "</body></html>\n",
        status=502,
        content_type="text/html; charset=utf-8",
    )


@dataclass
class Fault:
    """A fault injected into API answers until `count` runs out (None: until cleared)."""

    mode: FaultMode = "none"
    count: int | None = None
    retry_after: int = 60
    delay_s: float = 30.0
    # Only requests with these methods are hit; None hits every API request.
    methods: frozenset[str] | None = None
    # Only requests whose path starts with this are hit; None hits every path.
    path_prefix: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "count": self.count,
            "retry_after": self.retry_after,
            "delay_s": self.delay_s,
            "methods": sorted(self.methods) if self.methods is not None else None,
            "path_prefix": self.path_prefix,
        }


class FaultInjector:
    """The current fault and how many answers it has spoiled; the caller serialises access."""

    def __init__(self) -> None:
        self.fault = Fault()
        self.injected = 0

    def reset(self) -> None:
        self.fault = Fault()
        self.injected = 0

    def _applies(self, request: Request) -> bool:
        fault = self.fault
        if fault.mode == "none" or fault.count == 0:
            return False
        if fault.path_prefix is not None and not request.path.startswith(fault.path_prefix):
            return False
        return fault.methods is None or request.method in fault.methods

    def _consume(self) -> None:
        if self.fault.count is not None:
            self.fault.count -= 1
        self.injected += 1

    def take_delay(self, request: Request) -> float:
        """Seconds to stall this request (a "timeout" fault), 0 for none."""
        if self.fault.mode != "timeout" or not self._applies(request):
            return 0.0
        self._consume()
        return self.fault.delay_s

    def take_response(self, request: Request) -> Response | None:
        """The spoiled answer for this request (502 page, 429 or 403), None for none."""
        if self.fault.mode not in ("502", "429", "403") or not self._applies(request):
            return None
        self._consume()
        if self.fault.mode == "502":
            return bad_gateway()
        return error(
            int(self.fault.mode),
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            DOC_SECONDARY,
            {"Retry-After": str(self.fault.retry_after)},
        )

    def take_lost(self, request: Request) -> tuple[Response | None, float]:
        """For a request already handled: the answer replacing its own ("lost") and seconds to stall it first."""
        if self.fault.mode not in ("lost", "lost_timeout") or not self._applies(request):
            return None, 0.0
        self._consume()
        if self.fault.mode == "lost":
            return bad_gateway(), 0.0
        return None, self.fault.delay_s
