"""`http.request` against a real HTTP server on loopback (werkzeug, port 0, allowlisted explicitly)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from cmdgate.breaker import BreakerConfig, BreakerStore, InMemoryBreakerStore
from cmdgate.commands import CommandContext, CommandError, default_registry
from cmdgate.config import Settings
from cmdgate.executions.runner import run_attempt
from cmdgate.hosts import HostAllowlist
from cmdgate.retry import RetryBudget
from cmdgate.ssrf import check_url
from cmdgate_commands.builtin.http_request import HttpRequestParams, breakers, fetch, http_request
from cmdgate_commands.builtin.http_request import transport as module
from cmdgate_commands.builtin.http_request.fetch import UpstreamUnavailable


class FakeServices:
    """What the composition root lends the command: settings and a breaker store (in memory here)."""

    def __init__(self, allowed_hosts: str = "", max_result_bytes: int = 256 * 1024) -> None:
        self.settings = Settings(
            http_request_allowed_hosts=HostAllowlist.parse(allowed_hosts), max_result_bytes=max_result_bytes
        )
        self.store = InMemoryBreakerStore()

    def breaker_store(self) -> BreakerStore:
        return self.store

    def state_service(self, remaining_s: Any = None) -> Any:
        raise AssertionError("http.request uses no state")

    def aws_client(self, service: str) -> Any:
        raise AssertionError("http.request calls no AWS service")

    def secret(self, arn: str) -> str:
        raise AssertionError("http.request reads no secret")


SERVICES: list[FakeServices] = [FakeServices()]


class RecordingStore(InMemoryBreakerStore):
    """An in-memory breaker store that remembers which breakers were loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []

    def load(self, name: str) -> Any:
        self.loaded.append(name)
        return super().load(name)


class Upstream:
    """A small WSGI app whose behaviour each test chooses; counts hits per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.hits[request.path] += 1
        self.requests.append(
            {"method": request.method, "path": request.path, "headers": dict(request.headers), "body": request.data}
        )
        return self.route(request)(environ, start_response)

    def route(self, request: Request) -> Response:
        path = request.path
        if path == "/ok":
            return Response(json.dumps({"hello": "world"}), content_type="application/json", headers={"ETag": '"v1"'})
        if path.startswith("/status/"):
            return Response("status", status=int(path.rsplit("/", 1)[1]), headers={"Set-Cookie": "s=1"})
        if path == "/flaky":  # 503 for the first `fail` hits, then 200
            if self.hits[path] <= int(request.args.get("fail", "2")):
                return Response("busy", status=503)
            return Response("recovered", content_type="text/plain")
        if path == "/redirect":
            return Response("", status=int(request.args.get("code", "302")), headers={"Location": request.args["to"]})
        if path == "/big":
            return Response(b"x" * int(request.args["n"]), content_type="text/plain")
        if path == "/echo":
            return Response(
                json.dumps({"method": request.method, "body": request.get_data(as_text=True)}),
                content_type="application/json",
            )
        if path == "/binary":
            return Response(bytes(range(256)), content_type="application/octet-stream")
        return Response("not found", status=404)


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    app = Upstream()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    app.url = f"http://127.0.0.1:{server.server_port}"
    SERVICES[0] = FakeServices("127.0.0.1")
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fresh breaker store, breaker cache and retry budget per test; sleeps recorded, not slept."""
    budget = RetryBudget(initial_tokens=10)
    sleeps: list[float] = []
    SERVICES[0] = FakeServices()
    monkeypatch.setattr(fetch, "retry_budget", lambda: budget)
    monkeypatch.setattr(breakers, "_breakers", OrderedDict())
    monkeypatch.setattr(fetch, "sleep", sleeps.append)
    return sleeps


def context(seconds: float = 25.0) -> CommandContext:
    return CommandContext(
        execution_id="e1", principal_id="p1", attempt=1, deadline=time.monotonic() + seconds, services=SERVICES[0]
    )


def run(**params: Any) -> dict[str, Any]:
    return http_request(HttpRequestParams.model_validate(params), context())


def test_get_returns_status_safe_headers_and_json_body(upstream):
    result = run(url=upstream.url + "/ok", headers={"X-Trace": "abc"})
    assert result["status"] == 200
    assert result["body"] == {"hello": "world"}
    assert result["body_encoding"] == "json"
    assert result["truncated"] is False
    assert result["headers"]["etag"] == '"v1"'
    assert result["headers"]["content-type"] == "application/json"
    sent = upstream.requests[0]["headers"]
    assert sent["X-Trace"] == "abc"
    assert sent["Host"] == upstream.url.removeprefix("http://")
    assert sent["Accept-Encoding"] == "identity"


def test_unsafe_response_headers_are_not_returned_and_cookies_are_not_kept(upstream):
    result = run(url=upstream.url + "/status/404", headers={"user-agent": "mine"})
    assert result["status"] == 404
    assert "set-cookie" not in result["headers"]
    assert result["body"] == "status"
    assert not module.http_client().cookies  # nothing carried over to the next caller's request
    assert upstream.requests[0]["headers"]["User-Agent"] == "mine"


def test_connects_to_the_checked_address_with_the_original_host_and_sni(monkeypatch):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="pinned")

    answers = iter([["93.184.215.14"], ["127.0.0.1"]])  # a rebinding DNS: the second answer is loopback

    def rebinding_dns(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in next(answers)]

    monkeypatch.setattr(fetch, "check_url", lambda url, allowed: check_url(url, allowed, resolver=rebinding_dns))
    monkeypatch.setattr(module, "http_client", lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    result = run(url="https://api.example.com/v1/items?limit=5")
    assert result["body"] == "pinned"
    (request,) = seen
    assert str(request.url) == "https://93.184.215.14/v1/items?limit=5"
    assert request.headers["Host"] == "api.example.com"
    assert request.extensions["sni_hostname"] == "api.example.com"
    assert request.headers["Connection"] == "close"
    assert result["url"] == "https://api.example.com/v1/items?limit=5"


def test_binary_bodies_are_base64(upstream):
    result = run(url=upstream.url + "/binary")
    assert result["body_encoding"] == "base64"
    assert base64.b64decode(result["body"]) == bytes(range(256))


def test_post_sends_json(upstream):
    result = run(method="POST", url=upstream.url + "/echo", json={"a": [1, 2]})
    assert result["body"]["method"] == "POST"
    assert json.loads(result["body"]["body"]) == {"a": [1, 2]}


def test_hosts_outside_the_allowlist_are_refused_before_any_request(upstream):
    port = upstream.url.rsplit(":", 1)[1]
    with pytest.raises(CommandError) as refused:
        run(url=f"http://localhost:{port}/ok")  # the same server, by a name that is not allowlisted
    assert refused.value.code == "URL_NOT_ALLOWED"
    assert refused.value.status == 403
    assert upstream.hits["/ok"] == 0


def test_a_redirect_to_a_private_address_is_refused(upstream):
    with pytest.raises(CommandError) as refused:
        run(url=upstream.url + "/redirect?to=http://192.168.1.20/admin")
    assert refused.value.code == "URL_NOT_ALLOWED"
    assert upstream.hits["/redirect"] == 1


def test_a_redirect_to_the_metadata_service_is_refused(upstream):
    with pytest.raises(CommandError) as refused:
        run(url=upstream.url + "/redirect?to=http://169.254.169.254/latest/meta-data/iam/")
    assert refused.value.code == "URL_NOT_ALLOWED"


def test_allowed_redirects_are_followed_by_hand(upstream):
    result = run(url=upstream.url + "/redirect?to=/ok")
    assert result["status"] == 200
    assert result["redirects"] == 1
    assert result["body"] == {"hello": "world"}


def test_a_303_turns_a_post_into_a_get_without_body(upstream):
    result = run(method="POST", url=upstream.url + "/redirect?code=303&to=/echo", json={"a": 1})
    assert result["body"] == {"method": "GET", "body": ""}


def test_redirect_loops_stop_after_five(upstream):
    upstream.route = lambda request: Response("", status=302, headers={"Location": "/again"})
    with pytest.raises(CommandError) as failed:
        run(url=upstream.url + "/start")
    assert failed.value.code == "TOO_MANY_REDIRECTS"
    assert (upstream.hits["/start"], upstream.hits["/again"]) == (1, 5)


def test_post_is_not_retried_on_503(upstream, isolated):
    result = run(method="POST", url=upstream.url + "/status/503", json={"x": 1})
    assert result["status"] == 503
    assert upstream.hits["/status/503"] == 1
    assert isolated == []  # no backoff either


def test_get_is_retried_on_503_then_succeeds(upstream, isolated):
    result = run(url=upstream.url + "/flaky?fail=2")
    assert result["status"] == 200
    assert result["body"] == "recovered"
    assert upstream.hits["/flaky"] == 3
    assert len(isolated) == 2
    assert all(0 <= s < 2.0 for s in isolated)


def test_get_is_not_retried_on_500(upstream):
    result = run(url=upstream.url + "/status/500")
    assert result["status"] == 500
    assert upstream.hits["/status/500"] == 1


def test_connect_errors_are_retried_then_reported_as_transient(upstream, isolated):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CommandError) as failed:
        run(url=f"http://127.0.0.1:{port}/")
    assert failed.value.code == "UPSTREAM_UNREACHABLE"
    assert failed.value.status == 503
    assert len(isolated) == 2  # three attempts


def test_breaker_opens_after_repeated_failures_then_fails_fast(upstream, monkeypatch):
    monkeypatch.setattr(
        breakers,
        "breaker_config",
        lambda: BreakerConfig(min_calls=3, failure_rate_threshold=0.5, refresh_s=0, open_s=30),
    )
    first = run(url=upstream.url + "/status/503")  # three attempts, three failures: the breaker trips
    assert first["status"] == 503
    assert upstream.hits["/status/503"] == 3

    with pytest.raises(UpstreamUnavailable) as refused:
        run(url=upstream.url + "/status/503")
    assert refused.value.status == 503
    assert refused.value.code == "DEPENDENCY_UNAVAILABLE"
    assert 29 <= refused.value.retry_after_s <= 30
    assert upstream.hits["/status/503"] == 3  # failed fast: the upstream saw nothing

    spec = default_registry.get("http.request")
    assert spec is not None
    params = HttpRequestParams(url=upstream.url + "/ok")
    outcome = run_attempt(spec, params, context(), max_result_bytes=256 * 1024)
    assert (outcome.ok, outcome.status, outcome.code) == (False, 503, "DEPENDENCY_UNAVAILABLE")
    assert upstream.hits["/ok"] == 0  # same host and port, same breaker


def test_body_is_capped_at_the_read_limit(upstream, monkeypatch):
    monkeypatch.setattr(module, "MAX_READ_BYTES", 1000)
    result = run(url=upstream.url + "/big?n=50000")
    assert result["truncated"] is True
    assert result["body"] == "x" * 1000


def test_body_is_cut_to_fit_the_result_limit(upstream):
    result = run(url=upstream.url + "/big?n=2000000")  # 2 MB: more than the 1 MiB read cap
    assert result["truncated"] is True
    assert len(json.dumps(result, separators=(",", ":")).encode()) <= 256 * 1024
    assert set(result["body"]) == {"x"}
    assert len(result["body"]) > 200_000


def test_the_overall_timeout_is_bounded_by_the_commands_remaining_time(upstream):
    with pytest.raises(CommandError) as failed:
        http_request(HttpRequestParams(url=upstream.url + "/ok"), context(seconds=0.3))
    assert failed.value.code == "UPSTREAM_TIMEOUT"
    assert upstream.hits["/ok"] == 0


def test_params_are_validated():
    for bad in (
        {"url": "http://x/", "headers": {"Host": "evil"}},
        {"url": "http://x/", "headers": {"content-length": "1"}},
        {"url": "http://x/", "headers": {"X-A": "b\r\nInjected: 1"}},
        {"url": "http://x/", "headers": {f"X-{i}": "v" for i in range(33)}},
        {"url": "http://x/", "timeout_s": 26},
        {"url": "http://x/", "method": "TRACE"},
        {"url": "http://x/", "method": "GET", "json": {"a": 1}},
        {"url": "http://x/", "follow": True},
    ):
        with pytest.raises(ValidationError):
            HttpRequestParams.model_validate(bad)
    params = HttpRequestParams.model_validate({"url": "http://x/", "method": "PUT", "json": {"a": 1}})
    stored = params.model_dump(mode="json")
    assert stored["json"] == {"a": 1}  # stored under its public name, and read back (async executions)
    assert HttpRequestParams.model_validate(stored) == params


def test_is_registered_with_its_limits():
    spec = default_registry.get("http.request")
    assert spec is not None
    assert spec.timeout_s == 25
    assert spec.idempotency == "optional"
    assert "json" in spec.params_model.model_json_schema()["properties"]


def test_the_allowlist_and_breaker_store_come_from_the_context_services(upstream):
    SERVICES[0] = FakeServices("")  # loopback no longer allowlisted
    with pytest.raises(CommandError) as refused:
        run(url=upstream.url + "/ok")
    assert (refused.value.code, refused.value.status) == ("URL_NOT_ALLOWED", 403)
    SERVICES[0] = FakeServices("127.0.0.1")
    SERVICES[0].store = RecordingStore()
    run(url=upstream.url + "/ok")
    assert f"http:127.0.0.1:{upstream.url.rsplit(':', 1)[1]}" in SERVICES[0].store.loaded


def test_an_allowlist_entry_with_a_port_allows_only_that_port(upstream):
    port = int(upstream.url.rsplit(":", 1)[1])
    SERVICES[0] = FakeServices(f"127.0.0.1:{port}")
    assert run(url=upstream.url + "/ok")["status"] == 200
    SERVICES[0] = FakeServices(f"127.0.0.1:{port + 1 if port < 65535 else port - 1}")
    with pytest.raises(CommandError) as refused:
        run(url=upstream.url + "/ok")
    assert (refused.value.code, refused.value.status) == ("URL_NOT_ALLOWED", 403)
    assert upstream.hits["/ok"] == 1


def test_without_services_the_command_fails_loudly_instead_of_building_its_own(upstream):
    bare = CommandContext(execution_id="e1", principal_id="p1", attempt=1, deadline=time.monotonic() + 5)
    with pytest.raises(RuntimeError, match="no services"):
        http_request(HttpRequestParams(url=upstream.url + "/ok"), bare)
    assert upstream.hits["/ok"] == 0


def test_credential_headers_are_its_secret_params():
    params = HttpRequestParams.model_validate(
        {
            "url": "http://x/",
            "headers": {
                "Authorization": "Bearer t",
                "cookie": "a=1",
                "X-Api-Key": "k",
                "X-Auth-Token": "t",
                "X-A": "b",
            },
        }
    )
    assert sorted(params.secret_paths()) == [
        ("headers", "Authorization"),
        ("headers", "X-Api-Key"),
        ("headers", "X-Auth-Token"),
        ("headers", "cookie"),
    ]
