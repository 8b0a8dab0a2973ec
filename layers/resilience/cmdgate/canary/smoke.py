"""The smoke test a new version must pass before it takes traffic.

It invokes the versions themselves (not the API, whose alias still routes to the old ones):
the authorizer's new version with a short-lived key it creates for the purpose, then the api's
new version for `GET /v1/health` and a sync `echo` carrying the authorizer's context, as API
Gateway would pass it on. The key is revoked whatever happens, and expires on its own soon after.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cmdgate.auth.apikeys import ApiKeyStore
from cmdgate.canary.events import ApiTarget, authorizer_event, policy_allows, proxy_event
from cmdgate.canary.invoker import FunctionAnswer, FunctionInvoker

KEY_NAME = "canary-pre-traffic"
KEY_PERMISSIONS = ["commands.run:echo"]
KEY_RATE_LIMIT = {"quota": 10, "window_s": 60}
KEY_LIFETIME_S = 600
_T = TypeVar("_T")
ECHO_PATH, ECHO_RESOURCE = "/v1/commands/echo", "/v1/commands/{name}"
HEALTH_PATH = "/v1/health"
# A new version is cold: its first answers may time out or find a probe slow. Each check is a read
# or an idempotent echo, so it is tried again before the version is refused.
ATTEMPTS = 3
RETRY_PAUSE_S = 1.0


@dataclass(frozen=True)
class SmokeTargets:
    """The versions under test and the API they will serve."""

    api_function_arn: str
    authorizer_function_arn: str
    api: ApiTarget


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and why not (no secrets, no bodies)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class SmokeReport:
    """Every check that ran, in order."""

    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Passed only when every check ran and passed."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """The hook's log line and return value."""
        return {"ok": self.ok, "checks": [vars(check) for check in self.checks]}


class SmokeTest:
    """Runs the checks against the new versions through `invoker`."""

    def __init__(
        self,
        targets: SmokeTargets,
        invoker: FunctionInvoker,
        keys: ApiKeyStore,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._targets = targets
        self._invoker = invoker
        self._keys = keys
        self._clock = clock
        self._sleep = sleep
        self._attempts = max(1, attempts)

    def run(self) -> SmokeReport:
        """Health first (no key needed), then the authorized echo round trip with a key made for it."""
        report = SmokeReport()
        report.checks.append(self._retried(self._health)[1])
        key, record = self._keys.create(
            KEY_NAME, KEY_PERMISSIONS, KEY_RATE_LIMIT, expires_at=int(self._clock()) + KEY_LIFETIME_S
        )
        try:
            authorization, check = self._retried(lambda: self._authorize(key, f"key:{record.key_id}"))
            report.checks.append(check)
            if authorization is not None:
                report.checks.append(self._retried(lambda: self._echo(authorization))[1])
        finally:
            revoked = self._keys.revoke(record.key_id)
            report.checks.append(CheckResult("key_revoked", revoked, "" if revoked else "the key was not found"))
        return report

    def _retried(self, check: Callable[[], tuple[_T, CheckResult]]) -> tuple[_T, CheckResult]:
        """The first passing attempt of a check, else its last failure (with the attempts made)."""
        for attempt in range(1, self._attempts + 1):
            value, result = check()
            if result.ok or attempt == self._attempts:
                break
            self._sleep(RETRY_PAUSE_S * attempt)
        if not result.ok and self._attempts > 1:
            result = CheckResult(result.name, False, f"{result.detail} ({self._attempts} attempts)")
        return value, result

    def _health(self) -> tuple[None, CheckResult]:
        api = self._targets.api
        answer = self._call(self._targets.api_function_arn, proxy_event(api, "GET", HEALTH_PATH, HEALTH_PATH))
        problem = _proxy_problem(answer, 200)
        return None, CheckResult("health", problem is None, problem or "")

    def _authorize(self, key: str, principal_id: str) -> tuple[dict[str, Any] | None, CheckResult]:
        api = self._targets.api
        event = authorizer_event(api, "POST", ECHO_PATH, ECHO_RESOURCE, key)
        answer = self._call(self._targets.authorizer_function_arn, event)
        if answer.function_error is not None:
            return None, CheckResult("authorizer", False, f"function error {answer.function_error}")
        if not policy_allows(answer.payload, event["methodArn"]):
            return None, CheckResult("authorizer", False, "the policy does not allow the echo route")
        if answer.payload.get("principalId") != principal_id:
            return None, CheckResult("authorizer", False, "the policy names another principal")
        context = answer.payload.get("context") or {}
        return {"principalId": principal_id, **context}, CheckResult("authorizer", True)

    def _echo(self, authorization: dict[str, Any]) -> tuple[None, CheckResult]:
        nonce = uuid.uuid4().hex
        event = proxy_event(
            self._targets.api,
            "POST",
            ECHO_PATH,
            ECHO_RESOURCE,
            path_parameters={"name": "echo"},
            body={"message": nonce},
            authorizer=authorization,
        )
        answer = self._call(self._targets.api_function_arn, event)
        problem = _proxy_problem(answer, 200)
        if problem is None:
            result = (_body(answer) or {}).get("result")
            if not isinstance(result, dict) or result.get("message") != nonce:
                problem = "the echo did not return its message"
        return None, CheckResult("echo", problem is None, problem or "")

    def _call(self, function_arn: str, event: dict[str, Any]) -> FunctionAnswer:
        try:
            return self._invoker.invoke(function_arn, event)
        except Exception as exc:  # noqa: BLE001 - an unreachable version fails its check, it does not crash the hook
            return FunctionAnswer(None, f"invoke failed: {type(exc).__name__}")


def _proxy_problem(answer: FunctionAnswer, expected_status: int) -> str | None:
    """Why a proxy answer is not the expected one, or None."""
    if answer.function_error is not None:
        return f"function error {answer.function_error}"
    status = answer.payload.get("statusCode") if isinstance(answer.payload, dict) else None
    if status != expected_status:
        return f"status {status}, expected {expected_status}"
    return None


def _body(answer: FunctionAnswer) -> dict[str, Any] | None:
    try:
        body = json.loads(answer.payload.get("body") or "null")
    except (TypeError, ValueError):
        return None
    return body if isinstance(body, dict) else None
