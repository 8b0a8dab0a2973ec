"""What every router reads from the current request: the caller and the time left."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from cmdgate import errors
from cmdgate.auth import Principal


def principal(router: APIGatewayRouter) -> Principal:
    """The authenticated caller (401 if the authorizer passed none)."""
    found = Principal.from_authorizer_context(router.current_event.request_context.authorizer.raw_event)
    if found is None:
        raise errors.Unauthorized("No authenticated principal.")
    return found


def remaining_s(router: APIGatewayRouter) -> float:
    """Seconds left in this invocation (caps lock leases)."""
    return float(router.lambda_context.get_remaining_time_in_millis()) / 1000


_waited_s = [0.0]  # one request at a time per environment


def add_waited(seconds: float) -> None:
    """Count time this request spent waiting on purpose (a long poll): not the handler's own latency."""
    _waited_s[0] += max(0.0, seconds)


def take_waited() -> float:
    """The waited seconds of the request just answered (and reset for the next)."""
    waited, _waited_s[0] = _waited_s[0], 0.0
    return waited
