"""SSRF forms against `http.request` and completion callbacks, through the local stack.

The stack allowlists the literal `127.0.0.1` (HttpRequestAllowedHosts), so a loopback upstream is
reachable by that spelling only: every other way of writing a loopback, private, unspecified or
metadata address (decimal, octal and hex IPv4, IPv4-mapped IPv6, `localhost.`, userinfo) is
refused, and a redirect from the allowed upstream to such an address is not followed. The
upstream counts what reached it: a refused form reaches nothing. Names that resolve to the metadata
address need a resolver this machine does not have; tests/unit/resilience/test_ssrf.py covers them
with a fake one.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_commands_api import assert_problem
from tests.security.conftest import Target
from tests.security.effects import executions_of

pytestmark = pytest.mark.integration


# Each names the target's port in a spelling the allowlist's `127.0.0.1` does not match: a sample
# of each kind (tests/unit/resilience/test_ssrf.py checks every spelling against the guard alone).
LOOPBACK_IN_DISGUISE = [
    "http://2130706433:{port}/decimal",
    "http://0x7f000001:{port}/hex",
    "http://0177.0.0.1:{port}/octal",
    "http://[::ffff:127.0.0.1]:{port}/mapped",
    "http://localhost.:{port}/trailing-dot",
    "http://127.0.0.2:{port}/other-loopback",
    "http://0.0.0.0:{port}/unspecified",
    "http://127.0.0.1:{port}@10.0.0.1/userinfo",
]
ELSEWHERE = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
    "http://10.0.0.1/",
    "file:///etc/passwd",
]


def _ids(urls: list[str]) -> list[str]:
    return [u.split("/")[-1] or u.split("/")[2] for u in urls]


def _principal(stack: Stack, permissions: list[str]) -> tuple[str, str]:
    key, record = stack.key_store().create(f"ssrf-{uuid.uuid4().hex[:6]}", permissions, {"quota": 1000, "window_s": 60})
    return key, f"key:{record.key_id}"


@pytest.fixture(scope="module")
def caller(stack: Stack) -> tuple[str, str]:
    """A key that may run http.request, and its principal id."""
    return _principal(stack, ["commands.run:http.request"])


@pytest.fixture(scope="module")
def callback_caller(stack: Stack) -> tuple[str, str]:
    """A key that may run echo (and ask for a callback), and its principal id."""
    return _principal(stack, ["commands.run:echo"])


def test_http_request_reaches_the_allowlisted_spelling(stack: Stack, caller: tuple[str, str], target: Target) -> None:
    response = stack.client(caller[0]).post(
        "/v1/commands/http.request", json={"method": "GET", "url": f"http://127.0.0.1:{target.port}/plain"}
    )
    assert response.status_code == 200, response.text
    assert target.paths == ["/plain"]


@pytest.mark.parametrize("url", LOOPBACK_IN_DISGUISE + ELSEWHERE, ids=_ids(LOOPBACK_IN_DISGUISE + ELSEWHERE))
def test_http_request_refuses_every_other_form(stack: Stack, caller: tuple[str, str], target: Target, url: str) -> None:
    response = stack.client(caller[0]).post(
        "/v1/commands/http.request", json={"method": "GET", "url": url.format(port=target.port)}
    )
    assert response.status_code in (403, 422), response.text
    assert_problem(
        response, response.status_code, "URL_NOT_ALLOWED" if response.status_code == 403 else "VALIDATION_FAILED"
    )
    assert target.paths == []


@pytest.mark.parametrize(
    "destination",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:127.0.0.1]:{port}/after-redirect",
    ],
    ids=["metadata", "mapped"],
)
def test_a_redirect_to_a_refused_address_is_not_followed(
    stack: Stack, caller: tuple[str, str], target: Target, destination: str
) -> None:
    to = destination.format(port=target.port)
    response = stack.client(caller[0]).post(
        "/v1/commands/http.request",
        json={"method": "GET", "url": f"http://127.0.0.1:{target.port}/redirect?to={quote(to, safe='')}"},
    )
    assert_problem(response, 403, "URL_NOT_ALLOWED")
    assert target.paths == ["/redirect"]  # the first hop only


# The callback check is the same guard as http.request's: a sample of each kind of form, and the
# forms only a header can carry.
CALLBACK_FORMS = [
    "http://2130706433:{port}/decimal",
    "http://[::ffff:127.0.0.1]:{port}/mapped",
    "http://localhost.:{port}/trailing-dot",
    "http://127.0.0.1:{port}@10.0.0.1/userinfo",
    "http://169.254.169.254/latest/meta-data/",
    "ftp://127.0.0.1/hook",
    "http://127.0.0.1/" + "x" * 3000,
    "//127.0.0.1/scheme-relative",
]


@pytest.mark.parametrize("url", CALLBACK_FORMS, ids=[*_ids(CALLBACK_FORMS[:6]), "long", "scheme-relative"])
def test_hostile_callback_urls_are_refused_at_the_edge(
    stack: Stack, callback_caller: tuple[str, str], target: Target, url: str
) -> None:
    key, principal_id = callback_caller
    response = stack.client(key).post(
        "/v1/commands/echo", json={}, headers={"Callback-Url": url.format(port=target.port)}
    )
    assert_problem(response, 400, "CALLBACK_URL_NOT_ALLOWED")
    assert target.paths == []
    assert executions_of(stack, principal_id) == []  # refused before anything ran or was recorded
