"""Loopback stand-ins for the two AWS calls a CodeDeploy pre-traffic hook makes that moto cannot serve.

- Lambda `Invoke` of a function version (`POST /2015-03-31/functions/{name}/invocations`): moto's
  Lambda knows none of the local stack's functions, so each qualified ARN is mapped to an invoker
  (an execution environment of the Lambda emulator, running a build of the function).
- CodeDeploy `PutLifecycleEventHookExecutionStatus` (JSON 1.1, `X-Amz-Target`): moto 5.2.5 does not
  implement it; each report is recorded, so a test can assert what the hook decided.

Point a function at it with `AWS_ENDPOINT_URL_LAMBDA` / `AWS_ENDPOINT_URL_CODEDEPLOY`. Calls are
recorded with the caller's access key id (`CallRecorder`), for the least-privilege check.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from cmdgate_local.lambda_runtime import InvokeResult
from cmdgate_local.moto_endpoint import AwsCall, CallRecorder
from cmdgate_local.template import ACCOUNT_ID, REGION

CODEDEPLOY_TARGET = "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus"
HOOK_STATUSES = frozenset({"Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Unknown"})
_INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations\Z")
_CREDENTIAL = re.compile(r"Credential=([^/\s,]+)/")

Invoker = Callable[[bytes], InvokeResult]


@dataclass(frozen=True)
class HookReport:
    """One PutLifecycleEventHookExecutionStatus call as received."""

    deployment_id: str
    hook_execution_id: str
    status: str


class DeployStandIn:
    """The stand-in's state: which invoker serves each function ARN, and the hook reports received."""

    def __init__(self, application: str, deployment_group: str) -> None:
        self.functions: dict[str, Invoker] = {}
        self.reports: list[HookReport] = []
        self.recorder = CallRecorder()
        self._group_arn = f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:deploymentgroup:{application}/{deployment_group}"
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None

    @property
    def url(self) -> str:
        """The endpoint URL for AWS_ENDPOINT_URL_LAMBDA / AWS_ENDPOINT_URL_CODEDEPLOY."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        """Serve on a free loopback port in a daemon thread."""
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        threading.Thread(target=self._server.serve_forever, name="deploy-standin", daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def take_reports(self) -> list[HookReport]:
        """The reports received since the last take."""
        with self._lock:
            taken, self.reports = self.reports, []
        return taken

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        found = _CREDENTIAL.search(request.headers.get("Authorization", ""))
        access_key = found.group(1) if found else ""
        invoke = _INVOKE_PATH.fullmatch(request.path)
        if request.method == "POST" and invoke is not None:
            response = self._invoke(access_key, unquote(invoke.group("name")), request)
        elif request.method == "POST" and request.headers.get("X-Amz-Target") == CODEDEPLOY_TARGET:
            response = self._hook_status(access_key, request)
        else:
            response = _error(400, "UnknownOperationException", "not served by this stand-in")
        return response(environ, start_response)

    def _invoke(self, access_key: str, name: str, request: Request) -> Response:
        qualifier = request.args.get("Qualifier")
        arn = f"{name}:{qualifier}" if qualifier else name
        self.recorder.record(AwsCall(access_key, "lambda:InvokeFunction", (arn,)))
        invoker = self.functions.get(arn)
        if invoker is None:
            return _error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        result = invoker(request.get_data())
        headers = {"X-Amz-Executed-Version": arn.rsplit(":", 1)[-1]}
        if result.function_error:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return Response(result.payload, status=200, headers=headers, content_type="application/json")

    def _hook_status(self, access_key: str, request: Request) -> Response:
        self.recorder.record(AwsCall(access_key, "codedeploy:PutLifecycleEventHookExecutionStatus", (self._group_arn,)))
        try:
            fields = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _error(400, "SerializationException", "the body is not JSON")
        deployment_id, hook_id, status = (
            fields.get(k) for k in ("deploymentId", "lifecycleEventHookExecutionId", "status")
        )
        if not isinstance(deployment_id, str) or not isinstance(hook_id, str) or status not in HOOK_STATUSES:
            return _error(
                400, "ValidationException", "deploymentId, lifecycleEventHookExecutionId and status are required"
            )
        with self._lock:
            self.reports.append(HookReport(deployment_id, hook_id, str(status)))
        return Response(
            json.dumps({"lifecycleEventHookExecutionId": hook_id}), content_type="application/x-amz-json-1.1"
        )


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"__type": code, "message": message, "Message": message})
    return Response(body, status=status, headers={"x-amzn-ErrorType": code}, content_type="application/json")
