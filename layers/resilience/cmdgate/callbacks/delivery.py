"""Completion callbacks: the end of a run POSTed, signed, to the URL its caller named.

1. The caller sends `Callback-Url` with the run; `parse_callback_url` checks it at the edge (the
   SSRF guard and `HttpRequestAllowedHosts`, as `http.request` does) and the principal must have a
   signing secret.
2. When the run ends, the event processor's `command.executed` handler calls `hand_over`: the
   record's callback becomes `pending` (conditional, once) and `{"execution_id"}` goes to the
   callbacks queue (its own queue and DLQ).
3. `deliver` (the event processor, fed by the callbacks queue) claims an attempt, checks the URL
   again (DNS may have changed), and POSTs the execution's public view to the checked address
   (Host and SNI keep the name, no redirects), signed with every valid secret of the principal.
   A 2xx is `delivered`. Anything else is retried: the message's visibility is set to a full-jitter
   backoff (base `callback_retry_base_s`, cap `callback_retry_cap_s`) and it fails its batch item, so
   SQS brings it back then; after `callback_max_attempts` attempts, or at once for a destination the
   guard refuses, the callback is `abandoned` and alerted on the alerts topic.

`webhook-id` is `msg_<execution id>` on every attempt, so a receiver can drop a repeat
(delivery is at least once: a 2xx whose recording was lost is sent again).
"""

from __future__ import annotations

import json
import math
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger

from cmdgate import errors
from cmdgate.alerts import CALLBACK_ABANDONED
from cmdgate.callbacks.signing import SigningSecrets, signature_header
from cmdgate.callbacks.store import CallbackStore
from cmdgate.executions.model import Execution
from cmdgate.executions.queue import MessageQueue
from cmdgate.hosts import HostAllowlist
from cmdgate.retry import full_jitter
from cmdgate.ssrf import HostUnresolvable, Resolver, UrlNotAllowed, check_url

if TYPE_CHECKING:
    import httpx  # the delivery's client comes from the composition root; the api only checks URLs here

logger = Logger(child=True)
USER_AGENT = "cmdgate-callbacks/1"
Result = Literal["delivered", "retrying", "abandoned", "skipped"]


class CallbackUrlNotAllowed(errors.ProblemError):
    status, code, title = 400, "CALLBACK_URL_NOT_ALLOWED", "Callback URL not allowed"


class SigningSecretMissing(errors.ProblemError):
    status, code, title = 409, "SIGNING_SECRET_MISSING", "No signing secret"


class RetryLater(Exception):
    """The delivery failed; its message's visibility is set to the backoff, and it fails its batch item."""


@dataclass(frozen=True)
class CallbackPolicy:
    """Retry and timeout bounds of deliveries."""

    max_attempts: int = 8
    base_s: float = 1.0
    cap_s: float = 300.0
    timeout_s: float = 5.0

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> int:
        """Whole seconds before attempt `attempt + 1` (full jitter; at least 1 s)."""
        return max(1, math.ceil(full_jitter(attempt - 1, self.base_s, self.cap_s, rand)))


def parse_callback_url(
    header: str | None,
    allowed: HostAllowlist,
    has_secret: Callable[[], bool],
    resolver: Resolver = socket.getaddrinfo,
) -> str | None:
    """The checked `Callback-Url` of a run (None when absent); 400/409 problems otherwise."""
    if header is None or not header.strip():
        return None
    try:
        check_url(header.strip(), allowed, resolver)
    except UrlNotAllowed as refused:
        raise CallbackUrlNotAllowed(refused.detail) from None
    except HostUnresolvable:
        raise CallbackUrlNotAllowed("The callback host could not be resolved.") from None
    if not has_secret():
        raise SigningSecretMissing("Callbacks are signed: ask an admin for a signing secret first.")
    return header.strip()


class CallbackDelivery:
    """Hands finished runs to the callbacks queue and delivers them."""

    def __init__(
        self,
        store: CallbackStore,
        secrets: SigningSecrets,
        queue: MessageQueue,
        change_visibility: Callable[[str, int], None],
        http: httpx.Client,
        allowed: HostAllowlist,
        alert: Callable[[str, str, str], Any],
        policy: CallbackPolicy = CallbackPolicy(),
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._queue = queue
        self._change_visibility = change_visibility
        self._http = http
        self._allowed = allowed
        self._alert = alert
        self._policy = policy
        self._clock = clock
        self._rand = rand
        self._resolver = resolver

    def hand_over(self, execution_id: str) -> bool:
        """The run ended: queue its callback once (again only if the first hand-over's send was lost)."""
        if not self._store.mark_pending(execution_id):
            record = self._store.get(execution_id)
            state = record.callback if record else None
            if state is None or state.status != "pending" or state.attempts:
                return False  # no callback, or already handed over and attempted
        self._queue.send({"execution_id": execution_id})
        return True

    def deliver(self, body: str, receipt_handle: str) -> Result:
        """One attempt for a callbacks-queue message; raises RetryLater when it should come back."""
        execution_id = _execution_id(body)
        now = int(self._clock())
        record = self._store.begin_attempt(execution_id, now, lease_s=math.ceil(self._policy.timeout_s) + 5)
        if record is None or record.callback_url is None or record.callback is None:
            return "skipped"  # delivered, abandoned, unknown, or another copy of the message holds it
        attempt = record.callback.attempts
        error, permanent = self._post(record, now)
        if error is None:
            self._store.end_attempt(execution_id, attempt, "delivered", None)
            logger.info("callback delivered", extra={"execution_id": execution_id, "attempt": attempt})
            return "delivered"
        if permanent or attempt >= self._policy.max_attempts:
            if self._store.end_attempt(execution_id, attempt, "abandoned", error):
                self._alert(CALLBACK_ABANDONED, execution_id, f"callback abandoned after {attempt} attempt(s): {error}")
            logger.warning("callback abandoned", extra={"execution_id": execution_id, "error": error})
            return "abandoned"
        self._store.end_attempt(execution_id, attempt, "pending", error)
        delay = self._policy.delay_s(attempt, self._rand)
        self._change_visibility(receipt_handle, delay)
        logger.info("callback retried", extra={"execution_id": execution_id, "attempt": attempt, "delay_s": delay})
        raise RetryLater(f"callback of {execution_id} failed ({error}); retry in {delay} s")

    def _post(self, record: Execution, now: int) -> tuple[str | None, bool]:
        """(None, _) on a 2xx, else (a short reason, whether no retry can help)."""
        import httpx

        try:
            checked = check_url(record.callback_url or "", self._allowed, self._resolver)
        except UrlNotAllowed:
            return "destination refused", True
        except HostUnresolvable:
            return "host unresolvable", False
        keys = self._secrets.keys(record.principal_id)
        if not keys:
            return "no signing secret", True
        view = record.public_view()
        view.pop("callback", None)  # the same body on every attempt
        payload = json.dumps(view, separators=(",", ":")).encode()
        webhook_id = f"msg_{record.execution_id}"
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Host": checked.host_header,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(now),
            "webhook-signature": signature_header(keys, webhook_id, now, payload),
        }
        extensions: dict[str, Any] = {"timeout": httpx.Timeout(self._policy.timeout_s).as_dict()}
        if checked.url.scheme == "https":
            extensions["sni_hostname"] = checked.host
            headers["Connection"] = "close"  # the pool is keyed by address, not by name
        request = httpx.Request("POST", checked.pinned_url, headers=headers, content=payload, extensions=extensions)
        try:
            # Streamed and closed unread: only the status counts, and a receiver cannot hold the
            # attempt (or the memory) with an endless body.
            response = self._http.send(request, follow_redirects=False, stream=True)
        except httpx.TimeoutException:
            return "timeout", False
        except httpx.HTTPError:
            return "connection failed", False
        response.close()
        if 200 <= response.status_code < 300:
            return None, False
        return f"HTTP {response.status_code}", False


def _execution_id(body: str) -> str:
    try:
        message = json.loads(body)
    except ValueError:
        raise ValueError("callback message is not JSON") from None
    execution_id = message.get("execution_id") if isinstance(message, dict) else None
    if not isinstance(execution_id, str) or not execution_id.isalnum() or len(execution_id) > 64:
        raise ValueError("callback message names no execution")
    return execution_id
