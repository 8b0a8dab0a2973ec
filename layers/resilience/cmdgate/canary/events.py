"""API Gateway (REST, payload v1) events as the gateway would build them, for invoking a version directly."""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

SOURCE_IP = "127.0.0.1"
USER_AGENT = "cmdgate-canary"


@dataclass(frozen=True)
class ApiTarget:
    """Where the API lives: enough to build methodArns and request contexts."""

    region: str
    account_id: str
    api_id: str
    stage: str

    def method_arn(self, method: str, path: str) -> str:
        """The execute-api ARN API Gateway gives the authorizer for one request."""
        return f"arn:aws:execute-api:{self.region}:{self.account_id}:{self.api_id}/{self.stage}/{method}{path}"


def _request_context(target: ApiTarget, method: str, path: str, resource: str) -> dict[str, Any]:
    request_id = f"canary-{uuid.uuid4()}"
    return {
        "accountId": target.account_id,
        "apiId": target.api_id,
        "httpMethod": method,
        "identity": {"sourceIp": SOURCE_IP, "userAgent": USER_AGENT},
        "path": f"/{target.stage}{path}",
        "protocol": "HTTP/1.1",
        "requestId": request_id,
        "extendedRequestId": request_id,
        "requestTimeEpoch": int(time.time() * 1000),
        "resourceId": resource,
        "resourcePath": resource,
        "stage": target.stage,
    }


def authorizer_event(target: ApiTarget, method: str, path: str, resource: str, api_key: str) -> dict[str, Any]:
    """The REQUEST authorizer's event for a bearer key."""
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
    return {
        "type": "REQUEST",
        "methodArn": target.method_arn(method, path),
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": _request_context(target, method, path, resource),
    }


def proxy_event(
    target: ApiTarget,
    method: str,
    path: str,
    resource: str,
    *,
    path_parameters: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Lambda proxy event; `authorizer` is what the gateway passes on from an Allow (principalId + context)."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if body is not None:
        headers["Content-Type"] = "application/json"
    context = _request_context(target, method, path, resource)
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": context,
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def policy_allows(answer: Any, method_arn: str) -> bool:
    """Whether an authorizer answer's policy allows `method_arn` (an explicit Deny wins, as in IAM)."""
    if not isinstance(answer, dict):
        return False
    statements = (answer.get("policyDocument") or {}).get("Statement") or []
    allowed = False
    for statement in statements if isinstance(statements, list) else []:
        resources = statement.get("Resource") if isinstance(statement, dict) else None
        resources = [resources] if isinstance(resources, str) else resources or []
        if not any(isinstance(r, str) and fnmatch.fnmatchcase(method_arn, r) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed
