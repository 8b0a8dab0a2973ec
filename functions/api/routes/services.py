"""The one seam between the routers and the composition root: every store is reached through `services()`.

In a Lambda it is this environment's `cmdgate.wiring.Services`; tests put in-memory fakes in its place (`use`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cmdgate import wiring

if TYPE_CHECKING:
    from cmdgate.audit import AuditLog, AuditStamp, AuditTrail
    from cmdgate.auth import ApiKeyStore
    from cmdgate.callbacks import SigningSecrets
    from cmdgate.config import Settings
    from cmdgate.executions import ExecutionService
    from cmdgate.health import Check
    from cmdgate.idempotency import IdempotentRequests
    from cmdgate.ratelimit.requests import RequestRateLimiter
    from cmdgate.state.recovery import StateRecovery
    from cmdgate.state.service import StateService
    from cmdgate.webhooks.receiver import WebhookReceiver


class Services(Protocol):
    """What the api function needs from the composition root (a subset of `cmdgate.wiring.Services`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def api_keys(self) -> ApiKeyStore: ...

    @property
    def executions(self) -> ExecutionService: ...

    @property
    def idempotent_requests(self) -> IdempotentRequests: ...

    @property
    def rate_limiter(self) -> RequestRateLimiter: ...

    @property
    def signing_secrets(self) -> SigningSecrets: ...

    @property
    def webhooks(self) -> WebhookReceiver: ...

    @property
    def audit_log(self) -> AuditLog: ...

    @property
    def audit_trail(self) -> AuditTrail: ...

    @property
    def state_recovery(self) -> StateRecovery: ...

    def state_service(
        self, remaining_s: Callable[[], float] | None = None, audit: AuditStamp | None = None
    ) -> StateService: ...

    def health_checks(self) -> list[Check]: ...


_current: Services | None = None


def services() -> Services:
    """The services the routers call: the replacement a test put in, else this environment's."""
    return _current if _current is not None else wiring.services()


def use(replacement: Services | None) -> Services | None:
    """Route every request to `replacement` (tests; None restores the real one); returns what was in use."""
    global _current
    previous, _current = _current, replacement
    return previous
