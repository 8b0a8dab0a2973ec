"""Faults injected between the functions and moto, for chaos runs: AWS errors and latency at a set rate.

A layer in front of moto's WSGI app (every AWS call of the stack passes it), off by default: with no
rule set, a call costs one list check. `POST /_cmdgate/faults` sets the rules, `GET` shows them and
what was injected, `DELETE` clears them. A rule names the service (the SigV4 scope: `dynamodb`,
`sqs`), optionally the operations and the callers (access key id prefixes; by default the functions'
own keys, `LOCAL...`, so a test's or the stack's own calls are never hit), the fault and its rate:

    {"rules": [{"service": "dynamodb", "fault": "ProvisionedThroughputExceededException", "rate": 0.3,
                "actions": ["PutItem", "UpdateItem"]}], "seed": 7}

The errors are what AWS answers, byte for byte where botocore looks (status, `__type`, the SQS
`x-amzn-query-error` header its query-compatible JSON protocol reads, the query protocol's XML), so
botocore's own retries and our handling see real errors. `latency` delays a call by `latency_ms`
before it reaches moto (outside moto's lock: other calls go on meanwhile).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from cmdgate_local.moto_endpoint import CREDENTIAL, buffer_body

FAULTS_PATH = "/_cmdgate/faults"
LATENCY = "latency"
FUNCTION_CALLERS = ("LOCAL",)  # the access key ids the local stack gives its functions


@dataclass(frozen=True)
class AwsError:
    """One AWS error as its service answers it."""

    status: int
    type: str  # the JSON protocols' `__type`
    message: str
    query_code: str | None = None  # SQS: the query protocol's code (`x-amzn-query-error`, the XML's Code)
    fault: str = "Sender"


_DYNAMODB = "com.amazonaws.dynamodb.v20120810#"
ERRORS: dict[str, dict[str, AwsError]] = {
    "dynamodb": {
        "ProvisionedThroughputExceededException": AwsError(
            400,
            _DYNAMODB + "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API.",
        ),
        "ThrottlingException": AwsError(
            400, "com.amazon.coral.availability#ThrottlingException", "Rate of requests exceeds the allowed throughput."
        ),
        "InternalServerError": AwsError(
            500, _DYNAMODB + "InternalServerError", "Internal server error", None, "Receiver"
        ),
    },
    "sqs": {
        "ServiceUnavailable": AwsError(
            503,
            "com.amazonaws.sqs#ServiceUnavailable",
            "Service is unavailable. Try again later.",
            "AWS.SimpleQueueService.ServiceUnavailable",
            "Receiver",
        ),
        "RequestThrottled": AwsError(
            400, "com.amazonaws.sqs#RequestThrottled", "Request is throttled.", "RequestThrottled", "Sender"
        ),
    },
}


class FaultSpecError(ValueError):
    """A rule that names no known service, fault or a bad rate."""


@dataclass
class FaultRule:
    """Which calls to spoil, how, and how often."""

    service: str
    fault: str
    rate: float = 1.0
    actions: frozenset[str] | None = None
    callers: tuple[str, ...] | None = FUNCTION_CALLERS
    latency_ms: int = 0
    count: int | None = None  # stop after this many injections; None: until cleared

    @classmethod
    def parse(cls, spec: Any) -> FaultRule:
        """A rule from its JSON form; FaultSpecError for anything not understood."""
        if not isinstance(spec, dict):
            raise FaultSpecError("a rule is a JSON object")
        service, fault = str(spec.get("service", "")), str(spec.get("fault", ""))
        if service not in ERRORS:
            raise FaultSpecError(f"service must be one of {sorted(ERRORS)}")
        if fault != LATENCY and fault not in ERRORS[service]:
            raise FaultSpecError(f"fault must be {LATENCY!r} or one of {sorted(ERRORS[service])}")
        try:
            rate = float(spec.get("rate", 1.0))
            latency_ms = int(spec.get("latency_ms", 0))
            count = None if spec.get("count") is None else int(spec["count"])
        except (TypeError, ValueError) as exc:
            raise FaultSpecError(f"rate, latency_ms and count are numbers: {exc}") from exc
        if not 0.0 <= rate <= 1.0 or not 0 <= latency_ms <= 60_000 or (count is not None and count < 0):
            raise FaultSpecError("rate is within [0, 1], latency_ms within [0, 60000], count >= 0")
        actions, callers = spec.get("actions"), spec.get("callers", list(FUNCTION_CALLERS))
        if actions is not None and not (isinstance(actions, list) and all(isinstance(a, str) for a in actions)):
            raise FaultSpecError("actions is a list of operation names")
        if callers is not None and not (isinstance(callers, list) and all(isinstance(c, str) for c in callers)):
            raise FaultSpecError("callers is a list of access key id prefixes")
        return cls(
            service=service,
            fault=fault,
            rate=rate,
            actions=frozenset(actions) if actions is not None else None,
            callers=tuple(callers) if callers is not None else None,
            latency_ms=latency_ms,
            count=count,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "fault": self.fault,
            "rate": self.rate,
            "actions": sorted(self.actions) if self.actions is not None else None,
            "callers": list(self.callers) if self.callers is not None else None,
            "latency_ms": self.latency_ms,
            "count": self.count,
        }

    def matches(self, call: Call) -> bool:
        if self.count == 0 or call.service != self.service:
            return False
        if self.actions is not None and call.operation not in self.actions:
            return False
        return self.callers is None or call.access_key.startswith(self.callers)


@dataclass(frozen=True)
class Call:
    """What a request asks of AWS: the caller's access key id, the service, the operation, the protocol."""

    access_key: str
    service: str
    operation: str
    json_protocol: bool


def call_of(environ: dict[str, Any]) -> Call | None:
    """The call `environ` makes, None for anything that is not a signed AWS call (its body is put back)."""
    found = CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if found is None:
        return None
    access_key, _, service = found.groups()
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return Call(access_key, service, target.rsplit(".", 1)[-1], json_protocol=True)
    form = parse_qs(str(environ.get("QUERY_STRING", "")))
    if "Action" not in form:
        form = {**form, **parse_qs(buffer_body(environ).decode("utf-8", "replace"))}
    return Call(access_key, service, (form.get("Action") or [""])[0], json_protocol=False)


def error_response(error: AwsError, call: Call) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of `error` in the protocol of `call`."""
    request_id = str(uuid.uuid4())
    status = f"{error.status} {'Service Unavailable' if error.status == 503 else 'Bad Request'}"
    if error.status == 500:
        status = "500 Internal Server Error"
    if call.json_protocol:
        content_type = "application/x-amz-json-1.0"
        headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
        if error.query_code:
            headers.append(("x-amzn-query-error", f"{error.query_code};{error.fault}"))
        body = json.dumps({"__type": error.type, "message": error.message}).encode()
        return status, headers, body
    code = error.query_code or error.type.rsplit("#", 1)[-1]
    xml = (
        '<?xml version="1.0"?><ErrorResponse><Error>'
        f"<Type>{error.fault}</Type><Code>{code}</Code><Message>{error.message}</Message><Detail/>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml


class FaultInjector:
    """The rules in force and what they did; thread-safe (moto's server handles calls in threads)."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)  # nosec B311 - fault rates, not secrets
        self.injected: Counter[str] = Counter()
        self.seen = 0

    @property
    def active(self) -> bool:
        return bool(self._rules)

    def set_rules(self, rules: list[FaultRule], seed: int | None = None) -> None:
        """Replace the rules (an empty list turns injection off) and reset the tallies."""
        with self._lock:
            self._rules = list(rules)
            self._random = random.Random(seed)  # nosec B311
            self.injected = Counter()
            self.seen = 0

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [rule.as_json() for rule in self._rules],
                "seen": self.seen,
                "injected": dict(self.injected),
            }

    def decide(self, call: Call) -> tuple[AwsError | None, float]:
        """The error to answer `call` with (None: let it through) and the seconds to delay it first."""
        error: AwsError | None = None
        delay_s = 0.0
        with self._lock:
            matching = [rule for rule in self._rules if rule.matches(call)]
            if matching:
                self.seen += 1
            for rule in matching:
                if self._random.random() >= rule.rate:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                self.injected[f"{call.service}:{call.operation}:{rule.fault}"] += 1
                if rule.fault == LATENCY:
                    delay_s = max(delay_s, rule.latency_ms / 1000)
                elif error is None:
                    error = ERRORS[rule.service][rule.fault]
        return error, delay_s


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def faulty(app: WsgiApp, injector: FaultInjector) -> WsgiApp:
    """`app` behind the injector, with its control route at FAULTS_PATH."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == FAULTS_PATH and "HTTP_AUTHORIZATION" not in environ:
            return control(environ, start_response)
        if not injector.active:
            return app(environ, start_response)
        call = call_of(environ)
        if call is None:
            return app(environ, start_response)
        error, delay_s = injector.decide(call)
        if delay_s:
            time.sleep(delay_s)
        if error is None:
            return app(environ, start_response)
        status, headers, body = error_response(error, call)
        start_response(status, headers)
        return [body]

    def control(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method == "DELETE":
            injector.set_rules([])
        elif method == "POST":
            try:
                body = json.loads(buffer_body(environ) or b"{}")
                if not isinstance(body, dict) or not isinstance(body.get("rules", []), list):
                    raise FaultSpecError('the body is {"rules": [...], "seed": N}')
                seed = body.get("seed")
                if seed is not None and not isinstance(seed, int):
                    raise FaultSpecError("seed is an integer")
                injector.set_rules([FaultRule.parse(rule) for rule in body.get("rules", [])], seed)
            except ValueError as exc:  # FaultSpecError, or a body that is not JSON
                return _json(start_response, "400 Bad Request", {"error": str(exc)})
        elif method != "GET":
            return _json(start_response, "405 Method Not Allowed", {"error": "GET, POST or DELETE"})
        return _json(start_response, "200 OK", injector.report())

    return wrapped
