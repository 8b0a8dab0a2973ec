"""The builtin http.request command through the local stack: SSRF guard and the per-host circuit breaker."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from tests.integration.conftest import Stack, wait_for
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


class Upstream:
    """A loopback HTTP server whose answers the test switches."""

    def __init__(self) -> None:
        self.status = 200
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.reached_hold = threading.Event()  # a request to /hold arrived ...
        self.release_hold = threading.Event()  # ... and is answered once the test says so
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.requests += 1
        request = Request(environ)
        self.headers.append(dict(request.headers))
        if request.path == "/hold":
            self.reached_hold.set()
            self.release_hold.wait(30)
        return Response(f'{{"path": "{request.path}"}}', status=self.status, content_type="application/json")(
            environ, start_response
        )


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()


def test_get_through_the_allowlist(stack: Stack, upstream: Upstream) -> None:
    response = stack.admin.post("/v1/commands/http.request", json={"method": "GET", "url": f"{upstream.url}/hello"})
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["status"] == 200
    assert "hello" in str(result["body"])


def test_open_circuit_is_503_with_retry_after_and_not_stored(stack: Stack, upstream: Upstream) -> None:
    upstream.status = 503
    url = f"{upstream.url}/down-{uuid.uuid4().hex}"
    answers = []
    for _ in range(40):
        response = stack.admin.post("/v1/commands/http.request", json={"method": "POST", "url": url})
        answers.append(response.status_code)
        if response.status_code == 503:
            break
    assert response.status_code == 503, answers
    problem = assert_problem(response, 503, "DEPENDENCY_UNAVAILABLE")
    assert int(response.headers["retry-after"]) >= 1
    assert problem["execution_id"]
    # Refused before any effect: with an Idempotency-Key, the refusal is not stored for replay.
    key = uuid.uuid4().hex
    first = stack.admin.post(
        "/v1/commands/http.request", json={"method": "POST", "url": url}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == 503
    again = stack.admin.post(
        "/v1/commands/http.request", json={"method": "POST", "url": url}, headers={"Idempotency-Key": key}
    )
    assert "idempotent-replayed" not in again.headers


TOKEN = "tok-" + uuid.uuid4().hex
SECRET_HEADERS = {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": f"key-{TOKEN}"}


def raw_execution(stack: Stack, execution_id: str) -> dict[str, Any]:
    """The execution's item as DynamoDB holds it (read through moto, not through the API)."""
    item = stack.aws("dynamodb").get_item(
        TableName=stack.resource("ExecutionsTable"), Key={"execution_id": {"S": execution_id}}, ConsistentRead=True
    )
    return dict(item["Item"])


def test_a_sync_run_sends_credentials_but_stores_them_redacted(stack: Stack, upstream: Upstream) -> None:
    response = stack.admin.post(
        "/v1/commands/http.request", json={"url": f"{upstream.url}/sync", "headers": SECRET_HEADERS}
    )
    assert response.status_code == 200, response.text
    assert upstream.headers[-1]["Authorization"] == f"Bearer {TOKEN}"
    execution_id = response.json()["execution_id"]
    item = raw_execution(stack, execution_id)
    assert TOKEN not in json.dumps(item)
    assert json.loads(item["params_json"]["S"])["headers"]["Authorization"] == "[redacted]"
    assert TOKEN not in stack.admin.get(f"/v1/executions/{execution_id}").text
    assert_not_logged(stack, TOKEN)


def test_an_async_run_stores_credentials_sealed_and_still_sends_them(stack: Stack, upstream: Upstream) -> None:
    response = stack.admin.post(
        "/v1/commands/http.request",
        json={"url": f"{upstream.url}/hold", "headers": SECRET_HEADERS},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]
    # The worker is mid-request (held by the upstream): the record holds the sealed envelope.
    assert upstream.reached_hold.wait(30)
    queued = raw_execution(stack, execution_id)
    upstream.release_hold.set()
    assert TOKEN not in json.dumps(queued)
    assert json.loads(queued["secrets_json"]["S"])["alg"] == "AES-256-GCM"

    def finished() -> dict[str, Any] | None:
        view = stack.admin.get(f"/v1/executions/{execution_id}").json()
        return view if view["status"] in ("succeeded", "failed") else None

    view = wait_for(finished, timeout_s=60)
    assert view["status"] == "succeeded", view
    assert TOKEN not in json.dumps(view)
    sent = [h for h in upstream.headers if h.get("X-Api-Key") == f"key-{TOKEN}"]
    assert sent and sent[0]["Authorization"] == f"Bearer {TOKEN}"
    done = raw_execution(stack, execution_id)
    assert TOKEN not in json.dumps(done)
    assert "secrets_json" not in done
    assert_not_logged(stack, TOKEN)


def assert_not_logged(stack: Stack, secret: str) -> None:
    logs = [path for path in stack.log_dir.rglob("*") if path.is_file()]
    assert logs, "the functions wrote no logs"
    assert not [path.name for path in logs if secret in path.read_text(errors="replace")]
