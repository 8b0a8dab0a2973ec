"""An API Gateway (REST API, Lambda proxy) front on loopback, built from the template.

It routes by the template's Api events, runs the REQUEST authorizer first and
caches its policy per identity source for the authorizer TTL (re-evaluating the
cached policy against each new methodArn, as API Gateway does), builds payload
v1 proxy events, and answers its own errors with the template's GatewayResponses.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from cmdgate_local.lambda_runtime import EnvironmentFailed, InvocationTimeout, InvokeResult, PayloadTooLarge, Throttled
from cmdgate_local.template import ACCOUNT_ID, REGION, ApiRoute

log = logging.getLogger(__name__)

API_ID = "local"
INTEGRATION_TIMEOUT_S = 29.0
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024

Invoker = Callable[[str, dict[str, Any]], InvokeResult]

# Status of each gateway response type when the template does not set one.
DEFAULT_STATUS = {
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "AUTHORIZER_FAILURE": 500,  # API Gateway's default; the template makes it 503 with Retry-After
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "BAD_GATEWAY": 502,
    "INTEGRATION_TIMEOUT": 504,
    "INTEGRATION_FAILURE": 504,
    "REQUEST_TOO_LARGE": 413,
    "THROTTLED": 429,
    "DEFAULT_4XX": 400,
    "DEFAULT_5XX": 500,
}


@dataclass
class CachedAuthorization:
    """An authorizer answer kept for the TTL."""

    principal_id: str
    policy: dict[str, Any]
    context: dict[str, Any]
    expires: float


def _resource_matches(pattern: str, arn: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def evaluate_policy(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM evaluation for execute-api:Invoke: an explicit Deny wins, else an Allow is needed."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(_resource_matches(a, "execute-api:Invoke") for a in actions):
            continue
        if any(_resource_matches(r, method_arn) for r in resources):
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed


class ApiGateway:
    """The WSGI app of the local REST API."""

    def __init__(
        self,
        routes: list[ApiRoute],
        authorizer: dict[str, Any],
        gateway_responses: dict[str, dict[str, Any]],
        invoke: Invoker,
        stage: str,
        authorizer_ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._routes = [(route, route.matcher()) for route in routes]
        self._authorizer = authorizer
        self._ttl = float(authorizer["ttl_s"] if authorizer_ttl_s is None else authorizer_ttl_s)
        self._gateway_responses = gateway_responses
        self._invoke = invoke
        self._stage = stage
        self._clock = clock
        self._cache: dict[tuple[str, ...], CachedAuthorization] = {}
        self._cache_lock = threading.Lock()

    # -- WSGI ---------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            response = self.handle(request)
        except Exception:  # a bug of the front itself: still a gateway answer, never werkzeug's HTML page
            log.exception("the API front failed on %s %s", request.method, request.path)
            response = self._gateway_response("DEFAULT_5XX", {"requestId": str(uuid.uuid4())}, "Internal server error")
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        """Route, authorize, invoke, answer."""
        request_id = str(uuid.uuid4())
        context: dict[str, Any] = {"requestId": request_id}
        body = request.get_data(cache=True)
        if len(body) > MAX_PAYLOAD_BYTES:
            return self._gateway_response("REQUEST_TOO_LARGE", context, "Request Too Long")
        matched = self._match(request.method, request.path)
        if matched is None:
            return self._gateway_response("MISSING_AUTHENTICATION_TOKEN", context, "Missing Authentication Token")
        route, path_params = matched
        method_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{self._stage}/{request.method}{request.path}"
        authorization: CachedAuthorization | None = None
        if route.authorized:
            outcome = self._authorize(request, route, path_params, method_arn, request_id)
            if isinstance(outcome, Response):
                return outcome
            authorization = outcome
        event = self._proxy_event(request, route, path_params, body, request_id, authorization)
        started = time.monotonic()
        try:
            result = self._invoke(route.function_id, event)
        except (InvocationTimeout, TimeoutError):
            return self._gateway_response("INTEGRATION_TIMEOUT", context, "Endpoint request timed out")
        except Throttled:
            return self._gateway_response("THROTTLED", context, "Too Many Requests")
        except EnvironmentFailed:
            return self._gateway_response("BAD_GATEWAY", context, "Internal server error")
        except PayloadTooLarge:
            # Between Lambda's 6 MB and API Gateway's 10 MB, REST APIs are reported to answer
            # 413 {"message": "Request Too Long"}: the REQUEST_TOO_LARGE gateway response.
            return self._gateway_response("REQUEST_TOO_LARGE", context, "Request Too Long")
        if time.monotonic() - started > INTEGRATION_TIMEOUT_S:
            return self._gateway_response("INTEGRATION_TIMEOUT", context, "Endpoint request timed out")
        return self._proxy_response(result, context)

    # -- routing --------------------------------------------------------------
    def _match(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        for route, regex in self._routes:
            if route.method not in (method, "ANY"):
                continue
            found = regex.match(path)
            if found:
                return route, dict(found.groupdict())
        return None

    # -- authorizer -------------------------------------------------------------
    def _authorize(
        self, request: Request, route: ApiRoute, path_params: dict[str, str], method_arn: str, request_id: str
    ) -> CachedAuthorization | Response:
        context: dict[str, Any] = {"requestId": request_id}
        identity = tuple(request.headers.get(h, "") for h in self._authorizer["headers"])
        if not all(identity):
            # API Gateway answers 401 without calling the authorizer when an identity source is missing.
            return self._gateway_response("UNAUTHORIZED", context, "Unauthorized")
        now = self._clock()
        with self._cache_lock:
            cached = self._cache.get(identity)
        if cached is None or cached.expires <= now:
            event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                "resource": route.path,
                "path": request.path,
                "httpMethod": request.method,
                "headers": dict(request.headers.items()),
                "multiValueHeaders": _multi_headers(request),
                "queryStringParameters": dict(request.args.items()) or None,
                "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in request.args} or None,
                "pathParameters": path_params or None,
                "stageVariables": None,
                "requestContext": self._request_context(request, route, request_id, None),
            }
            try:
                result = self._invoke(self._authorizer["function_id"], event)
            except (InvocationTimeout, Throttled, TimeoutError, EnvironmentFailed):
                return self._gateway_response("AUTHORIZER_FAILURE", context, "Authorizer failed")
            try:
                answer = result.json() if result.payload else None
            except ValueError:  # e.g. the emulator's own text when an init outlived the timeout
                return self._gateway_response("AUTHORIZER_FAILURE", context, "Authorizer failed")
            if result.function_error:
                if isinstance(answer, dict) and answer.get("errorMessage") == "Unauthorized":
                    return self._gateway_response("UNAUTHORIZED", context, "Unauthorized")
                return self._gateway_response("AUTHORIZER_CONFIGURATION_ERROR", context, "Authorizer error")
            if not isinstance(answer, dict) or "policyDocument" not in answer or "principalId" not in answer:
                return self._gateway_response("AUTHORIZER_CONFIGURATION_ERROR", context, "Authorizer error")
            cached = CachedAuthorization(
                principal_id=str(answer["principalId"]),
                policy=answer["policyDocument"],
                context={k: v for k, v in (answer.get("context") or {}).items() if not isinstance(v, (dict, list))},
                expires=now + self._ttl,
            )
            if self._ttl > 0:
                with self._cache_lock:
                    self._cache[identity] = cached
        if not evaluate_policy(cached.policy, method_arn):
            return self._gateway_response("ACCESS_DENIED", context, "User is not authorized to access this resource")
        return cached

    # -- events and responses -----------------------------------------------------
    def _request_context(
        self, request: Request, route: ApiRoute, request_id: str, authorization: CachedAuthorization | None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        context: dict[str, Any] = {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": request.host,
            "domainPrefix": request.host.split(".")[0],
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent"),
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
            },
            "path": f"/{self._stage}{request.path}",
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": route.path,
            "resourcePath": route.path,
            "stage": self._stage,
        }
        if authorization is not None:
            context["authorizer"] = {"principalId": authorization.principal_id, **authorization.context}
        return context

    def _proxy_event(
        self,
        request: Request,
        route: ApiRoute,
        path_params: dict[str, str],
        body: bytes,
        request_id: str,
        authorization: CachedAuthorization | None,
    ) -> dict[str, Any]:
        text: str | None
        is_base64 = False
        if not body:
            text = None
        else:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text, is_base64 = base64.b64encode(body).decode("ascii"), True
        return {
            "resource": route.path,
            "path": request.path,
            "httpMethod": request.method,
            "headers": dict(request.headers.items()) or None,
            "multiValueHeaders": _multi_headers(request) or None,
            "queryStringParameters": dict(request.args.items()) or None,
            "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in request.args} or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": self._request_context(request, route, request_id, authorization),
            "body": text,
            "isBase64Encoded": is_base64,
        }

    def _proxy_response(self, result: InvokeResult, context: dict[str, Any]) -> Response:
        if result.function_error:
            return self._gateway_response("BAD_GATEWAY", context, "Internal server error")
        try:
            answer = result.json()
            status = int(answer["statusCode"])
        except (ValueError, KeyError, TypeError):
            return self._gateway_response("BAD_GATEWAY", context, "Internal server error")
        raw = answer.get("body") or ""
        body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode("utf-8")
        response = Response(body, status=status)
        response.headers.remove("Content-Type")
        for name, value in (answer.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            response.headers.remove(name)
            for value in values:
                response.headers.add(name, str(value))
        response.headers["x-amzn-RequestId"] = context["requestId"]
        return response

    def _gateway_response(self, response_type: str, context: dict[str, Any], message: str) -> Response:
        """API Gateway's own answer, shaped by the template's GatewayResponses (or its defaults)."""
        fallback = "DEFAULT_5XX" if DEFAULT_STATUS.get(response_type, 500) >= 500 else "DEFAULT_4XX"
        spec = self._gateway_responses.get(response_type) or self._gateway_responses.get(fallback) or {}
        status = int(spec.get("StatusCode") or DEFAULT_STATUS.get(response_type, 500))
        values = {
            "context.requestId": context["requestId"],
            "context.error.message": message,
            "context.error.messageString": json.dumps(message),
            "context.error.responseType": response_type,
        }
        templates = spec.get("ResponseTemplates") or {}
        if templates:
            content_type, template = next(iter(templates.items()))
            body = re.sub(r"\$(context\.[A-Za-z.]+)", lambda m: values.get(m.group(1), ""), str(template))
        else:
            content_type, body = "application/json", json.dumps({"message": message})
        response = Response(body, status=status, content_type=content_type)
        for name, expression in ((spec.get("ResponseParameters") or {}).get("Headers") or {}).items():
            expression = str(expression)
            if expression.startswith("'") and expression.endswith("'"):
                response.headers[name] = expression[1:-1]
            elif expression in values:
                response.headers[name] = values[expression]
        response.headers["x-amzn-RequestId"] = context["requestId"]
        response.headers["x-amzn-ErrorType"] = response_type
        return response


def _multi_headers(request: Request) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name, []).append(value)
    return headers


class ApiServer:
    """Serves an ApiGateway app on 127.0.0.1 in a thread."""

    def __init__(self, app: ApiGateway, port: int) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="apigw", daemon=True)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        """Serve."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
