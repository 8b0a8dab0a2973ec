"""moto in server mode on loopback, with its requests serialized.

moto checks a DynamoDB condition and applies the write without a lock while
its server handles requests in threads; DynamoDB itself is atomic per item.
One lock around the WSGI app restores that, so concurrency tests measure our
code, not moto's races. SQS long polls are let through unlocked: they block
inside moto and would stall every other call.

`recording` notes every AWS call (the caller's access key id from the SigV4 credential,
the IAM service prefix, the action and the resources it names) and serves the record at
`GET /_cmdgate/aws-calls`: the local stack gives each function its own access key id, so
the integration suite can check each function's calls against its policy in template.yaml.

`LockTimes` adds up, per action, the time each call waited for the lock and held it, served at
`GET /_cmdgate/lock-time`; `GET /_cmdgate/memory` gives the process's RSS and, when tracemalloc
traces (PYTHONTRACEMALLOC=N), the top allocation sites. Both are for finding what slows or grows
the stack (docs/design.md, "Local stack differences from AWS"). `/_cmdgate/faults` switches the
fault injection of cmdgate_local.fault_proxy (AWS errors and latency for chaos runs; off by default).

`POST /_cmdgate/event-sources` `{"function": "<LogicalId>", "enabled": false}` pauses that
function's event source mappings (what `UpdateEventSourceMapping Enabled=false` does on AWS): a
benchmark queues a backlog first and then times the workers draining it alone.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from cmdgate_local import moto_patches

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class _LockUse:
    calls: int = 0
    waited_s: float = 0.0
    held_s: float = 0.0


class LockTimes:
    """Per action (`X-Amz-Target`, or the query protocol's `Action`): calls, seconds waited, seconds held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uses: dict[str, _LockUse] = {}

    def add(self, action: str, waited_s: float, held_s: float) -> None:
        """Count one call of `action`."""
        with self._lock:
            use = self._uses.setdefault(action, _LockUse())
            use.calls += 1
            use.waited_s += waited_s
            use.held_s += held_s

    def report(self) -> dict[str, Any]:
        """Actions by time held, most first, with the totals."""
        with self._lock:
            uses = sorted(self._uses.items(), key=lambda entry: entry[1].held_s, reverse=True)
            return {
                "held_s": round(sum(use.held_s for _, use in uses), 4),
                "calls": sum(use.calls for _, use in uses),
                "actions": [
                    {
                        "action": action,
                        "calls": use.calls,
                        "held_s": round(use.held_s, 4),
                        "waited_s": round(use.waited_s, 4),
                        "held_ms_per_call": round(1000 * use.held_s / use.calls, 3),
                    }
                    for action, use in uses
                ],
            }


def action_of(environ: dict[str, Any]) -> str:
    """What a call asks for: its `X-Amz-Target`, the query protocol's Action, else method and path."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return target
    action = parse_qs(str(environ.get("QUERY_STRING", ""))).get("Action")
    if action:
        return action[0]
    return f"{environ.get('REQUEST_METHOD', '')} {str(environ.get('PATH_INFO', ''))[:40]}"


def serialized(app: WsgiApp, times: LockTimes | None = None) -> WsgiApp:
    """Wrap a WSGI app so one request at a time runs inside it (long polls excepted).

    With `times`, each call's wait for the lock and time inside it are added up by action.
    """
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).endswith(".ReceiveMessage"):
            return app(environ, start_response)
        captured: list[tuple[Any, ...]] = []
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured.append((status, headers, exc_info))
            return written.append

        asked = time.perf_counter()
        with lock:
            entered = time.perf_counter()
            body = list(app(environ, capture))
            left = time.perf_counter()
        if times is not None:
            times.add(action_of(environ), entered - asked, left - entered)
        start_response(*captured[0])
        return written + body

    return wrapped


CALLS_PATH = "/_cmdgate/aws-calls"
LOCK_TIME_PATH = "/_cmdgate/lock-time"
MEMORY_PATH = "/_cmdgate/memory"
EVENT_SOURCES_PATH = "/_cmdgate/event-sources"
CREDENTIAL = re.compile(r"Credential=([^/\s,]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")
# Request fields naming the resource a call acts on, by protocol.
_RESOURCE_FIELDS = ("TableName", "KeyId", "SecretId", "TopicArn", "stateMachineArn")
# A queue URL's path: /<account>/<name>; recorded as the queue's ARN, which IAM policies name.
_QUEUE_PATH = re.compile(r"^https?://[^/]+/(\d{12})/([\w.-]+)$")
# An execution ARN: recorded as its state machine's (coarsely: the machine's executions are the machine).
_EXECUTION_ARN = re.compile(r"^(arn:[\w-]+:states:[\w-]+:\d{12}):execution:([^:]+):[^:]+$")
_TRANSACT_PARTS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


@dataclass(frozen=True)
class AwsCall:
    """One kind of call: who (access key id), what (`service:Action`) and on which resources."""

    access_key: str
    action: str
    resources: tuple[str, ...]


class CallRecorder:
    """Counts the AWS calls seen, by caller, action and resources."""

    def __init__(self) -> None:
        self._calls: Counter[AwsCall] = Counter()
        self._lock = threading.Lock()

    def observe(self, environ: dict[str, Any]) -> None:
        """Record the call `environ` makes (its body is read and put back for the app)."""
        found = CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        if found is None:
            return
        access_key, region, service = found.groups()
        body = buffer_body(environ)
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target:
            operation = target.rsplit(".", 1)[-1]
            try:
                fields = json.loads(body or b"{}")
            except ValueError:
                fields = {}
        else:
            form = {**parse_qs(str(environ.get("QUERY_STRING", ""))), **parse_qs(body.decode("utf-8", "replace"))}
            operation = (form.get("Action") or [""])[0]
            fields = {name: values[0] for name, values in form.items()}
        if not operation:
            return
        fields = fields if isinstance(fields, dict) else {}
        if operation in ("TransactWriteItems", "TransactGetItems"):
            # IAM has no action for a transaction: each part needs its own (PutItem, ConditionCheckItem...).
            calls = [
                AwsCall(access_key, f"{service}:{_TRANSACT_PARTS[part]}", (str(item[part].get("TableName")),))
                for item in fields.get("TransactItems") or ()
                for part in _TRANSACT_PARTS
                if isinstance(item, dict) and isinstance(item.get(part), dict)
            ]
        else:
            calls = [AwsCall(access_key, f"{service}:{operation}", _resources(fields, region))]
        with self._lock:
            self._calls.update(calls)

    def record(self, call: AwsCall) -> None:
        """Count one call seen elsewhere (a stand-in for a service moto lacks)."""
        with self._lock:
            self._calls[call] += 1

    def calls(self) -> list[dict[str, Any]]:
        """Every kind of call seen, with its count."""
        with self._lock:
            return [{**asdict(call), "count": count} for call, count in sorted(self._calls.items(), key=str)]


def buffer_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _resources(fields: dict[str, Any], region: str = "us-east-1") -> tuple[str, ...]:
    names = [str(fields[name]) for name in _RESOURCE_FIELDS if isinstance(fields.get(name), str)]
    if isinstance(fields.get("RequestItems"), dict):
        names.extend(str(name) for name in fields["RequestItems"])
    if isinstance(fields.get("QueueUrl"), str):
        queue = _QUEUE_PATH.match(fields["QueueUrl"])
        names.append(f"arn:aws:sqs:{region}:{queue.group(1)}:{queue.group(2)}" if queue else fields["QueueUrl"])
    if isinstance(fields.get("executionArn"), str):
        execution = _EXECUTION_ARN.match(fields["executionArn"])
        names.append(f"{execution.group(1)}:stateMachine:{execution.group(2)}" if execution else fields["executionArn"])
    if isinstance(fields.get("Entries"), list):  # EventBridge PutEvents: each entry names its bus
        names.extend(str(e.get("EventBusName") or "default") for e in fields["Entries"] if isinstance(e, dict))
    return tuple(sorted(set(names)))


def rss_bytes() -> int | None:
    """This process's resident set size (Linux), or None where /proc is not there."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def memory_report(top: int = 25) -> dict[str, Any]:
    """RSS and, while tracemalloc traces, the `top` allocation sites by bytes held."""
    report: dict[str, Any] = {"rss_bytes": rss_bytes(), "tracing": tracemalloc.is_tracing()}
    if tracemalloc.is_tracing():
        stats = tracemalloc.take_snapshot().statistics("traceback")
        report["traced_bytes"] = sum(stat.size for stat in stats)
        report["top"] = [
            {"size": stat.size, "count": stat.count, "where": [str(frame) for frame in stat.traceback][-6:]}
            for stat in stats[:top]
        ]
    return report


Control = Callable[[dict[str, Any]], dict[str, Any]]


def recording(
    app: WsgiApp, recorder: CallRecorder, times: LockTimes | None = None, controls: dict[str, Control] | None = None
) -> WsgiApp:
    """Record each call before `app` serves it; serve the record at CALLS_PATH (and LOCK_TIME_PATH, MEMORY_PATH).

    `controls` maps a `/_cmdgate/...` path to what a POST of a JSON object there does (the stack's
    own switches, e.g. pausing an event source mapping); its answer is the JSON reply.
    """

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        control = (controls or {}).get(str(environ.get("PATH_INFO", "")))
        if control is not None and environ.get("REQUEST_METHOD") == "POST":
            try:
                asked = json.loads(buffer_body(environ) or b"{}")
                if not isinstance(asked, dict):
                    raise ValueError("a JSON object is expected")
                reply, status = control(asked), "200 OK"
            except (ValueError, KeyError) as error:
                reply, status = {"error": str(error)}, "400 Bad Request"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(reply).encode()]
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in (
            CALLS_PATH,
            LOCK_TIME_PATH,
            MEMORY_PATH,
        ):
            path = environ["PATH_INFO"]
            if path == CALLS_PATH:
                answer: dict[str, Any] = {"calls": recorder.calls()}
            elif path == LOCK_TIME_PATH:
                answer = times.report() if times is not None else {"held_s": 0, "calls": 0, "actions": []}
            else:
                answer = memory_report()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(answer).encode()]
        recorder.observe(environ)
        return app(environ, start_response)

    return wrapped


class MotoEndpoint:
    """A moto server thread on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        from cmdgate_local.fault_proxy import FaultInjector  # it builds on this module's call parsing

        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.recorder = CallRecorder()
        self.lock_times = LockTimes()
        self.controls: dict[str, Control] = {}  # filled before or after start(): read per request
        self.faults = FaultInjector()

    @property
    def url(self) -> str:
        """The endpoint URL boto3 should use (AWS_ENDPOINT_URL)."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        from cmdgate_local.fault_proxy import faulty

        moto_patches.install()
        moto = DomainDispatcherApplication(create_backend_app)
        app = faulty(
            recording(serialized(moto, self.lock_times), self.recorder, self.lock_times, self.controls), self.faults
        )
        self._server = make_server("127.0.0.1", self._port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def set_event_sources(moto_url: str, function: str, enabled: bool, timeout_s: float = 90) -> dict[str, Any]:
    """Pause (answered once idle) or resume a function's event source mappings on a running local stack."""
    import httpx

    answer = httpx.post(
        moto_url + EVENT_SOURCES_PATH, json={"function": function, "enabled": enabled}, timeout=timeout_s
    )
    answer.raise_for_status()
    reply: dict[str, Any] = answer.json()
    return reply
