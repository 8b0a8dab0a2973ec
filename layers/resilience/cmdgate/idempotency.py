"""HTTP idempotency (Idempotency-Key) on top of Powertools' idempotency utility.

Powertools stores the claim, the in-progress marker (expiring with the Lambda's
remaining time, so an attempt whose Lambda died can be retried) and the result;
this module adds what it does not map to HTTP: keys scoped to the principal,
the request fingerprint (method + path + RFC 8785 canonical body), the exact
replay of status, headers and body, and the 409/422 answers.

An answer that cannot be saved (the idempotency table refusing the success write past
botocore's retries) releases the in-progress marker instead of leaving it to hold the key
for the rest of the invocation's time (29 s on the api function): the client's retry then
runs again under the same keyed execution id (cmdgate.executions.service.keyed_execution_id),
which answers the first run's outcome or finds its effects already applied. That is what a
retry after the marker's expiry did anyway; it no longer waits 409s out first. Releasing a
marker (here, or Powertools' own when the wrapped function raised) is retried a few times.

Stripe's rule holds because the wrapped function never raises for a command's
own failure: once a command has started, its outcome (200, 4xx, 500, 504) is
returned as a response and stored. What is refused before it starts is raised
before this module is called, so nothing is stored and a retry may run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import rfc8785
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from cmdgate import aws_errors, errors
from cmdgate.retry import Retrier, RetryBudget, RetryPolicy

logger = Logger(child=True)

# Changing this breaks dedupe of keys already stored: it is part of every stored key.
KEY_PREFIX = "cmdgate.commands.run"
REPLAYED_HEADER = "Idempotent-Replayed"
_BARE_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255})"')

HttpResponse = dict[str, Any]  # {"status": int, "headers": {str: str}, "body": JSON}


class IdempotencyKeyMissing(errors.ProblemError):
    status, code, title = 400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key required"


class InvalidIdempotencyKey(errors.ProblemError):
    status, code, title = 400, "INVALID_IDEMPOTENCY_KEY", "Invalid Idempotency-Key"


class IdempotencyKeyReused(errors.ProblemError):
    status, code, title = 422, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key reused with a different request"


class IdempotencyInProgress(errors.ProblemError):
    status, code, title = 409, "IDEMPOTENCY_IN_PROGRESS", "A request with this Idempotency-Key is in progress"


def parse_idempotency_key(header: str | None) -> str | None:
    """The key of an `Idempotency-Key` header: a Structured Field string or the bare form (same key)."""
    if header is None:
        return None
    value = header.strip()
    quoted = _SF_STRING.fullmatch(value)
    if quoted:
        key = re.sub(r"\\(.)", r"\1", quoted.group(1))
    elif _BARE_KEY.fullmatch(value) and not value.startswith('"'):
        key = value
    else:
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-255 printable ASCII characters.")
    if not 1 <= len(key) <= 255:
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-255 printable ASCII characters.")
    return key


def require_key_if_needed(key: str | None, idempotency: str, command: str) -> None:
    """400 IDEMPOTENCY_KEY_MISSING when a command declared `idempotency="required"` is run without a key."""
    if key is None and idempotency == "required":
        raise IdempotencyKeyMissing(f"Command {command!r} requires an Idempotency-Key header.")


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 of method, path and the RFC 8785 canonical form of the JSON body."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode() + b"\n" + path.encode() + b"\n")
    try:
        digest.update(rfc8785.dumps(body))
    except ValueError:  # numbers outside I-JSON have no canonical form
        raise errors.InvalidJson("Numbers must fit IEEE 754 doubles exactly (RFC 8785 / I-JSON).") from None
    return digest.hexdigest()


class ReleasingDynamoDBPersistenceLayer(DynamoDBPersistenceLayer):
    """Powertools' DynamoDB layer, except that a success it cannot save releases the in-progress marker,
    and a marker's release (also Powertools' own, when the wrapped function raised) is retried.

    Powertools leaves the marker in place when `save_success` fails, so every retry of the key is
    answered 409 until the marker expires; the run is over by then, so nothing is gained by holding it.
    A release is the one DynamoDB write retried here as well as by botocore: under sustained throttling
    botocore's retry quota runs out and stops retrying (measured: at 50 % throttling 4 of 9 releases
    failed), and a marker left behind holds its client for the invocation's whole time. The retries
    are few and short, and a budget of their own bounds them (cmdgate.retry).
    """

    def __init__(self, *args: Any, release_retrier: Retrier | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release_retrier or Retrier(
            RetryPolicy(max_attempts=4, base_s=0.05, cap_s=0.4, min_attempt_s=0.0, safety_margin_s=0.0),
            is_retryable=lambda outcome: isinstance(outcome, BaseException) and aws_errors.is_unavailable(outcome),
            budget=RetryBudget(ratio=0.5, min_per_s=0.5, max_tokens=10.0),
        )

    def _delete_record(self, data_record: DataRecord) -> None:
        self._release.call(lambda: super(ReleasingDynamoDBPersistenceLayer, self)._delete_record(data_record))

    def save_success(self, data: dict[str, Any], result: dict[str, Any]) -> None:
        try:
            super().save_success(data, result)
        except Exception as unsaved:
            try:
                self.delete_record(data, unsaved)
            except (BotoCoreError, ClientError):
                logger.warning("idempotency marker neither saved nor released; it holds the key until it expires")
            else:
                logger.warning("idempotency answer not saved; marker released for the retry")
            raise


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    if isinstance(response, dict):
        response = {**response, "headers": {**(response.get("headers") or {}), REPLAYED_HEADER: "true"}}
    return response


def _produce(request: dict[str, Any], produce: Callable[[], HttpResponse]) -> HttpResponse:
    """The function Powertools wraps: `request` is the idempotency payload, `produce` makes the answer."""
    return produce()


class IdempotentRequests:
    """Runs a request at most once per (principal, key) and replays its stored response."""

    def __init__(self, persistence: BasePersistenceLayer, *, expires_after_s: int = 86400) -> None:
        self.config = IdempotencyConfig(
            event_key_jmespath="scoped_key",
            payload_validation_jmespath="fingerprint",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_s,
            response_hook=_mark_replayed,
        )
        # Powertools' public decorator; the fixed key_prefix keeps stored keys independent of names.
        self._once = idempotent_function(
            _produce,
            data_keyword_argument="request",
            persistence_store=persistence,
            config=self.config,
            key_prefix=KEY_PREFIX,
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Let the in-progress marker expire with this invocation's remaining time."""
        self.config.register_lambda_context(context)

    def run(
        self, principal_id: str, key: str, fingerprint: str, produce: Callable[[], HttpResponse], retry_after_s: int
    ) -> HttpResponse:
        """The response for this key: produced now, or the stored one (with Idempotent-Replayed)."""
        payload = {"scoped_key": f"{principal_id}\n{key}", "fingerprint": fingerprint}
        try:
            response: HttpResponse = self._once(request=payload, produce=produce)
        except IdempotencyValidationError:
            raise IdempotencyKeyReused("This Idempotency-Key was used with a different method, path or body.") from None
        except IdempotencyAlreadyInProgressError:
            raise IdempotencyInProgress(
                "The first request with this Idempotency-Key is still running.",
                headers={"Retry-After": str(retry_after_s)},
            ) from None
        return response
