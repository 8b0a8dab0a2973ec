"""AWS calls of the aws pack: a breaker per service, and AWS's answers as clear command errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from cmdgate.breaker import BreakerConfig, BreakerStore, CircuitBreaker, CircuitOpen
from cmdgate.commands import CommandError, DependencyRefused, TransientCommandError

T = TypeVar("T")
THROTTLING = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestThrottled"})
MAX_MESSAGE_CHARS = 200


def _is_failure(exc: BaseException) -> bool:
    """Outages count against the breaker; AWS refusing one request (4xx) does not."""
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500 or exc.response.get("Error", {}).get("Code") in THROTTLING
    return isinstance(exc, BotoCoreError)


BREAKER_CONFIG = BreakerConfig(min_calls=5, window_s=60, bucket_s=10, open_s=30, refresh_s=2, is_failure=_is_failure)
_breakers: dict[str, CircuitBreaker] = {}
_lock = threading.Lock()


def breaker_for(service: str, store: BreakerStore) -> CircuitBreaker:
    """The breaker of one AWS service (`aws:stepfunctions`, ...) in `store`."""
    name = f"aws:{service}"
    with _lock:
        breaker = _breakers.get(name)
        if breaker is None or breaker.store is not store:
            breaker = _breakers[name] = CircuitBreaker(name, store, BREAKER_CONFIG)
        return breaker


def guarded(service: str, store: BreakerStore, call: Callable[[], T], *, repeatable: bool = False) -> T:
    """`call()` through the service's breaker; failures raised as CommandErrors.

    `repeatable`: the call may be made again safely (an outage is then a TransientCommandError,
    redelivered for async runs); otherwise an outage after the request may have landed is final.
    """
    try:
        with breaker_for(service, store).guard():
            return call()
    except CircuitOpen as exc:
        raise DependencyRefused(
            f"AWS {service} is failing; calls to it are paused for {exc.retry_after_s} s.",
            retry_after_s=exc.retry_after_s,
        ) from None
    except ClientError as exc:
        raise _client_error(service, exc, repeatable) from None
    except (ConnectionError, ReadTimeoutError):
        if repeatable:
            raise TransientCommandError(f"AWS {service} did not answer.", code="UPSTREAM_UNREACHABLE") from None
        raise CommandError(
            f"AWS {service} did not answer; the call may or may not have taken effect.",
            status=504,
            code="UPSTREAM_TIMEOUT",
        ) from None


def _client_error(service: str, exc: ClientError, repeatable: bool) -> CommandError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", ""))[:MAX_MESSAGE_CHARS]
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    detail = f"AWS {service} answered {code}: {message}".rstrip(": ")
    if code in THROTTLING:
        return DependencyRefused(detail, retry_after_s=2)
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return CommandError(detail, status=403, code="UPSTREAM_FORBIDDEN")
    if status >= 500:
        if repeatable:
            return TransientCommandError(detail, code="UPSTREAM_ERROR")
        return CommandError(detail, status=502, code="UPSTREAM_ERROR")
    if code.endswith("DoesNotExist") or code.startswith("NonExistent") or status == 404:
        return CommandError(detail, status=404, code="UPSTREAM_NOT_FOUND")
    return CommandError(detail, status=422, code="UPSTREAM_REJECTED")
