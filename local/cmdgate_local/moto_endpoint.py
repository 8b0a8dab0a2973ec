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
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serialized(app: WsgiApp) -> WsgiApp:
    """Wrap a WSGI app so one request at a time runs inside it (long polls excepted)."""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).endswith(".ReceiveMessage"):
            return app(environ, start_response)
        captured: list[tuple[Any, ...]] = []
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured.append((status, headers, exc_info))
            return written.append

        with lock:
            body = list(app(environ, capture))
        start_response(*captured[0])
        return written + body

    return wrapped


CALLS_PATH = "/_cmdgate/aws-calls"
_CREDENTIAL = re.compile(r"Credential=([^/\s,]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")
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
        found = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        if found is None:
            return
        access_key, region, service = found.groups()
        body = _buffer_body(environ)
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

    def calls(self) -> list[dict[str, Any]]:
        """Every kind of call seen, with its count."""
        with self._lock:
            return [{**asdict(call), "count": count} for call, count in sorted(self._calls.items(), key=str)]


def _buffer_body(environ: dict[str, Any]) -> bytes:
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


def recording(app: WsgiApp, recorder: CallRecorder) -> WsgiApp:
    """Record each call before `app` serves it; serve the record at CALLS_PATH."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == CALLS_PATH and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"calls": recorder.calls()}).encode()]
        recorder.observe(environ)
        return app(environ, start_response)

    return wrapped


class MotoEndpoint:
    """A moto server thread on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.recorder = CallRecorder()

    @property
    def url(self) -> str:
        """The endpoint URL boto3 should use (AWS_ENDPOINT_URL)."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        app = recording(serialized(DomainDispatcherApplication(create_backend_app)), self.recorder)
        self._server = make_server("127.0.0.1", self._port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
