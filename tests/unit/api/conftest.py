"""The api function loaded as Lambda loads it (app.py beside its `routes` package), on in-memory services."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from cmdgate_local.openapi_export import load_app
from tests.unit.api.fakes import FakeServices

SOURCE_IP = "198.51.100.7"
ADMIN = {"principal_id": "key:admin", "permissions": json.dumps(["admin"]), "kind": "api_key", "key_id": "admin"}


def principal(*permissions: str, principal_id: str = "key:alice") -> dict[str, Any]:
    return {"principal_id": principal_id, "permissions": json.dumps(list(permissions)), "kind": "api_key"}


class Context:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 12_000


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Api:
    app: ModuleType
    services: FakeServices

    def call(
        self,
        method: str,
        path: str,
        *,
        resource: str | None = None,
        path_parameters: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: str | None = None,
        caller: dict[str, Any] | None = ADMIN,
        base64_body: bool = False,
    ) -> Answer:
        """One API Gateway REST proxy event through `lambda_handler` (so X-Request-Id is added too)."""
        headers = dict(headers or {})
        event = {
            "resource": resource or path,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": path_parameters,
            "requestContext": {
                "requestId": "req-1",
                "resourcePath": resource or path,
                "httpMethod": method,
                "identity": {"sourceIp": SOURCE_IP},
                "authorizer": caller,
            },
            "body": base64.b64encode(body.encode()).decode() if base64_body and body is not None else body,
            "isBase64Encoded": base64_body,
        }
        raw = self.app.lambda_handler(event, Context())
        multi = raw.get("multiValueHeaders") or {}
        flat = {k: v[-1] for k, v in multi.items()} | (raw.get("headers") or {})
        text = raw.get("body") or ""
        if raw.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        return Answer(int(raw["statusCode"]), {k.lower(): str(v) for k, v in flat.items()}, text)


@pytest.fixture(scope="session")
def api_module() -> ModuleType:
    return load_app()


@pytest.fixture
def api(api_module: ModuleType) -> Iterator[Api]:
    from routes import services as seam

    fakes = FakeServices()
    previous = seam.use(fakes)
    try:
        yield Api(api_module, fakes)
    finally:
        seam.use(previous)
