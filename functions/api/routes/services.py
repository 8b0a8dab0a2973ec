"""The one seam between the routers and the composition root: every store is reached through `services()`.

Today it is `cmdgate.wiring` itself; tests replace it with in-memory fakes (`use`), and an injectable
Services object can take its place without touching a router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cmdgate import wiring

if TYPE_CHECKING:
    from cmdgate.auth import ApiKeyStore
    from cmdgate.executions import ExecutionService
    from cmdgate.health import Check
    from cmdgate.idempotency import IdempotentRequests
    from cmdgate.ratelimit.requests import RequestRateLimiter
    from cmdgate.state.service import StateService


class Services(Protocol):
    """What the api function needs from the composition root."""

    def api_key_store(self) -> ApiKeyStore: ...

    def execution_service(self) -> ExecutionService: ...

    def idempotent_requests(self) -> IdempotentRequests: ...

    def rate_limiter(self) -> RequestRateLimiter: ...

    def state_service(self, remaining_s: Callable[[], float] | None = None) -> StateService: ...

    def health_checks(self) -> list[Check]: ...


_current: Services = wiring


def services() -> Services:
    """The services the routers call."""
    return _current


def use(replacement: Services) -> Services:
    """Route every request to `replacement` (tests); returns what was in use."""
    global _current
    previous, _current = _current, replacement
    return previous
