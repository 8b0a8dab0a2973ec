"""The builtin http.request command through the local stack: SSRF guard and the per-host circuit breaker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem

pytestmark = pytest.mark.integration


class Upstream:
    """A loopback HTTP server whose answers the test switches."""

    def __init__(self) -> None:
        self.status = 200
        self.requests = 0
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.requests += 1
        request = Request(environ)
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


def test_metadata_address_is_refused(stack: Stack) -> None:
    response = stack.admin.post(
        "/v1/commands/http.request", json={"method": "GET", "url": "http://169.254.169.254/latest/meta-data/"}
    )
    assert_problem(response, 403, "URL_NOT_ALLOWED")


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
