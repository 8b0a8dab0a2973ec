"""Header injection: CR, LF and NUL in headers that http.request forwards, control characters in
headers the API reads, and a caller's own request id: refused with a 4xx problem, never forwarded
or echoed.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem
from tests.security.conftest import Target

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Note": "a\r\nX-Injected: 1"},
        {"X-Note": "a\nX-Injected: 1"},
        {"X-Note": "a\rb"},
        {"X-Note": "a\u0000b"},
        {"X-Note\r\nX-Injected": "1"},
        {"X Note": "1"},
        {"X-Note:": "1"},
        {"Host": "169.254.169.254"},
        {"Transfer-Encoding": "chunked"},
        {"Proxy-Authorization": "Basic eA=="},
    ],
    ids=["crlf", "lf", "cr", "nul", "crlf-name", "space-name", "colon-name", "host", "te", "proxy"],
)
def test_http_request_refuses_headers_that_would_split_or_steer_its_request(
    stack: Stack, target: Target, headers: dict[str, str]
) -> None:
    response = stack.admin.post(
        "/v1/commands/http.request",
        json={"method": "GET", "url": f"http://127.0.0.1:{target.port}/h", "headers": headers},
    )
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert target.paths == []


def _raw_post(stack: Stack, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    url = urlsplit(stack.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    try:
        connection.request(
            "POST",
            url.path.rstrip("/") + path,
            body=json.dumps({"message": "h"}),
            headers={"Authorization": f"Bearer {stack.admin_key}", "Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Idempotency-Key": "abc\x01def"},
        {"Idempotency-Key": "abc\x7fdef"},
        {"Idempotency-Key": "\t"},
        {"Callback-Url": "http://127.0.0.1/\x00hook"},
        {"Callback-Url": "http://127.0.0.1/ hook"},
    ],
    ids=["idem-ctl", "idem-del", "idem-tab", "callback-nul", "callback-space"],
)
def test_control_characters_in_headers_the_api_reads_are_4xx(stack: Stack, headers: dict[str, str]) -> None:
    status, response_headers, body = _raw_post(stack, "/v1/commands/echo", headers)
    assert 400 <= status < 500, body
    assert response_headers["content-type"].startswith("application/problem+json")
    assert "\x01" not in json.dumps(response_headers) and "\x00" not in json.dumps(response_headers)


def test_a_caller_cannot_choose_the_request_id_it_is_answered_with(stack: Stack) -> None:
    status, headers, _ = _raw_post(stack, "/v1/commands/echo", {"X-Request-Id": "forged-id"})
    assert status == 200
    assert headers["x-request-id"] != "forged-id"
