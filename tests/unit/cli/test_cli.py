"""The operator CLI against an in-process fake API (httpx.MockTransport): exit codes, output, errors."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cmdgate_cli import waiting
from cmdgate_cli.app import main
from cmdgate_cli.config import FileConfig, read_config, write_config
from cmdgate_cli.problems import CliError

ROOT = Path(__file__).resolve().parents[3]
KEY = "cg_unit_secret_key_value"
PROBLEM = "application/problem+json"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class FakeApi:
    """Answers from a list of handlers, in order (the last one repeats); records every request."""

    answers: list[Callable[[httpx.Request], httpx.Response]]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers[min(len(self.requests), len(self.answers)) - 1](request)


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None, content_type: str = "") -> Any:
    def respond(_: httpx.Request) -> httpx.Response:
        kind = content_type or (PROBLEM if status >= 400 else "application/json")
        content = b"" if body is None else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers={"Content-Type": kind, **(headers or {})})

    return respond


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Any:
    body = {"type": f"https://cmdgate.dev/problems/{code}", "title": title, "status": status, "detail": detail}
    return answer(status, {**body, "code": code, "request_id": "req-1", **extra})


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CMDGATE_URL", "http://api.test")
    monkeypatch.setenv("CMDGATE_API_KEY", KEY)
    monkeypatch.setenv("CMDGATE_CONFIG", str(tmp_path / "cmdgate" / "config.toml"))
    monkeypatch.setattr(waiting.time, "sleep", lambda _: None)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def invoke(args: list[str], api: FakeApi | None = None) -> Result:
        transport = httpx.MockTransport(api) if api is not None else None
        code = main(args, transport=transport)
        captured = capsys.readouterr()
        assert KEY not in captured.out + captured.err, "the API key must never be printed"
        assert "Traceback" not in captured.err
        return Result(code, captured.out, captured.err)

    return invoke


def test_sync_run_prints_the_result_and_sends_typed_params(cli: Callable[..., Result]) -> None:
    api = FakeApi([answer(200, {"execution_id": "e1", "command": "echo", "status": "succeeded", "result": {"m": 1}})])
    result = cli(["run", "echo", "--param", "message=hi", "--param", "count:=3", "-k", "abc"], api)
    assert result.code == 0
    assert json.loads(result.out) == {"m": 1}
    sent = api.requests[0]
    assert (sent.method, sent.url.path) == ("POST", "/v1/commands/echo")
    assert json.loads(sent.content) == {"message": "hi", "count": 3}
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Idempotency-Key"] == "abc"
    assert "Prefer" not in sent.headers


def test_params_file_and_params_merge(cli: Callable[..., Result], tmp_path: Path) -> None:
    params = tmp_path / "p.json"
    params.write_text('{"message": "from file", "n": 1}')
    api = FakeApi([answer(200, {"execution_id": "e1", "command": "echo", "status": "succeeded", "result": None})])
    assert cli(["run", "echo", "--json", str(params), "-p", "n:=2"], api).code == 0
    assert json.loads(api.requests[0].content) == {"message": "from file", "n": 2}


def test_a_sync_run_that_started_and_failed_exits_1_with_the_problem(cli: Callable[..., Result]) -> None:
    failed = problem(500, "COMMAND_FAILED", "Command failed", "the command raised", execution_id="e9")
    result = cli(["run", "fail", "-p", "mode=permanent"], FakeApi([failed]))
    assert result.code == 1
    assert "Command failed" in result.err
    assert "COMMAND_FAILED" in result.err
    assert "the command raised" in result.err
    assert "e9" in result.err
    assert "req-1" in result.err


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422, 428])
def test_refusals_exit_3_with_title_detail_and_code(cli: Callable[..., Result], status: int) -> None:
    refused = problem(status, "SOME_CODE", "Some title", "Some detail", errors=[{"loc": ["body", "x"], "msg": "bad"}])
    result = cli(["run", "echo"], FakeApi([refused]))
    assert result.code == 3
    assert f"Some title ({status} SOME_CODE)" in result.err
    assert "Some detail" in result.err
    assert "body.x: bad" in result.err


@pytest.mark.parametrize(
    ("respond", "retry_after"),
    [
        (problem(429, "RATE_LIMITED", "Too many requests", "slow down"), None),
        (answer(429, {"title": "Too many", "detail": "wait", "code": "RATE_LIMITED"}, {"Retry-After": "7"}), "7"),
        (problem(503, "DEPENDENCY_UNAVAILABLE", "Unavailable", "breaker open"), None),
        (answer(502, None, content_type="text/html"), None),
    ],
)
def test_unavailable_answers_exit_4(cli: Callable[..., Result], respond: Any, retry_after: str | None) -> None:
    result = cli(["commands", "list"], FakeApi([respond]))
    assert result.code == 4
    assert "error:" in result.err
    if retry_after:
        assert f"retry after: {retry_after} s" in result.err


def test_no_connection_exits_4_without_a_traceback(cli: Callable[..., Result]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    result = cli(["keys", "list"], FakeApi([refuse]))
    assert result.code == 4
    assert "Cannot reach cmdgate" in result.err
    assert "Connection refused" in result.err


def test_json_output_puts_the_problem_on_stdout(cli: Callable[..., Result]) -> None:
    result = cli(["--output", "json", "keys", "list"], FakeApi([problem(403, "FORBIDDEN", "Forbidden", "not admin")]))
    assert result.code == 3
    error = json.loads(result.out)["error"]
    assert (error["title"], error["detail"], error["code"], error["status"]) == (
        "Forbidden",
        "not admin",
        "FORBIDDEN",
        403,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run", "echo", "--param", "novalue"],
        ["run", "echo", "--param", "n:=not json"],
        ["run", "echo", "--json", "/nonexistent/params.json"],
        ["run"],
        ["keys", "create", "--name", "x"],
        ["state", "put", "k", "--value", "1"],
        ["state", "put", "k", "--value", "1", "--create", "--replace"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2_and_send_nothing(cli: Callable[..., Result], args: list[str]) -> None:
    api = FakeApi([answer(200, {})])
    assert cli(args, api).code == 2
    assert api.requests == []


def test_a_missing_key_is_a_usage_error(cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMDGATE_API_KEY")
    api = FakeApi([answer(200, {})])
    result = cli(["keys", "list"], api)
    assert result.code == 2
    assert "No API key" in result.err
    assert api.requests == []


def _execution(status: str, **more: Any) -> dict[str, Any]:
    return {"execution_id": "e1", "command": "echo", "status": status, "attempts": 1, "created_at": "t", **more}


def test_async_wait_long_polls_until_the_end(cli: Callable[..., Result]) -> None:
    api = FakeApi(
        [
            answer(202, {"execution_id": "e1", "status": "queued"}, {"Location": "/v1/executions/e1"}),
            answer(200, _execution("queued")),
            answer(200, _execution("running")),
            answer(200, _execution("succeeded", result={"message": "later"})),
        ]
    )
    result = cli(["run", "echo", "-p", "message=later", "--async", "--wait"], api)
    assert result.code == 0
    assert json.loads(result.out) == {"message": "later"}
    assert api.requests[0].headers["Prefer"] == "respond-async"
    polls = api.requests[1:]
    assert [r.url.path for r in polls] == ["/v1/executions/e1"] * 3
    assert all(0 < int(r.url.params["wait"]) <= 20 for r in polls)
    assert "running" in result.err  # the status as it changed


@pytest.mark.parametrize("status", ["failed", "dead_lettered", "cancelled"])
def test_waiting_for_a_run_that_fails_exits_1(cli: Callable[..., Result], status: str) -> None:
    error = {"code": "COMMAND_FAILED", "detail": "boom", "status": 500}
    api = FakeApi([answer(200, _execution(status, error=error))])
    result = cli(["executions", "wait", "e1"], api)
    assert result.code == 1
    assert "boom" in result.err


def test_async_without_wait_prints_the_id(cli: Callable[..., Result]) -> None:
    api = FakeApi([answer(202, {"execution_id": "e7", "status": "queued"})])
    result = cli(["run", "echo", "--async"], api)
    assert (result.code, result.out.strip()) == (0, "e7")
    assert len(api.requests) == 1


def test_wait_falls_back_to_polling_when_the_server_refuses_the_wait_parameter(cli: Callable[..., Result]) -> None:
    def strict(request: httpx.Request) -> httpx.Response:
        if "wait" in request.url.params:
            return problem(400, "BAD_REQUEST", "Bad request", "unknown parameter wait")(request)
        done = sum(1 for r in api.requests if "wait" not in r.url.params) >= 2
        return answer(200, _execution("succeeded" if done else "running", result=1))(request)

    api = FakeApi([strict])
    assert cli(["executions", "wait", "e1"], api).code == 0
    assert ["wait" in r.url.params for r in api.requests] == [True, False, False]


def test_wait_gives_up_after_its_timeout_with_exit_4(cli: Callable[..., Result]) -> None:
    clock = iter(float(t) for t in range(1000))
    api = FakeApi([answer(200, _execution("running"))])
    with pytest.raises(CliError) as raised:
        waiting.wait_for_end(
            _api(api), "e1", timeout_s=5, on_update=lambda _: None, sleep=lambda _: None, clock=lambda: next(clock)
        )
    assert raised.value.exit_code == 4
    assert raised.value.problem.code == "WAIT_TIMEOUT"


def _api(fake: FakeApi) -> Any:
    from cmdgate_cli.client import Api
    from cmdgate_cli.config import Target

    return Api(Target("http://api.test", KEY), 5, httpx.MockTransport(fake))


def test_cancel_on_a_server_without_the_route_says_so(cli: Callable[..., Result]) -> None:
    result = cli(["executions", "cancel", "e1"], FakeApi([problem(404, "NOT_FOUND", "Not found", "No such route.")]))
    assert result.code == 3
    assert "cannot cancel" in result.err
    result = cli(["executions", "cancel", "e1"], FakeApi([answer(405, None, content_type="text/plain")]))
    assert result.code == 3
    assert "cannot cancel" in result.err


def test_cancel_of_a_finished_execution_is_refused(cli: Callable[..., Result]) -> None:
    api = FakeApi([problem(409, "EXECUTION_FINISHED", "Conflict", "already succeeded")])
    result = cli(["executions", "cancel", "e1"], api)
    assert result.code == 3
    assert "already succeeded" in result.err
    assert (api.requests[0].method, api.requests[0].url.path) == ("POST", "/v1/executions/e1/cancel")


def test_arguments_stay_one_path_segment(cli: Callable[..., Result]) -> None:
    api = FakeApi([answer(204)])
    assert cli(["keys", "revoke", "../commands"], api).code == 0
    assert cli(["keys", "revoke", ".."], api).code == 0
    assert [r.url.raw_path for r in api.requests] == [b"/v1/admin/keys/..%2Fcommands", b"/v1/admin/keys/%2E%2E"]


def _state(value: Any, version: int) -> Any:
    headers = {"ETag": f'"{version}"', "State-Version": str(version), "Gist-Synced-Version": "0"}
    return answer(200, value, headers)


@pytest.mark.parametrize(
    ("flags", "header", "expected"),
    [
        (["--create"], "If-None-Match", "*"),
        (["--if-match", "3"], "If-Match", '"3"'),
        (["--replace"], "If-Match", "*"),
    ],
)
def test_state_put_preconditions(cli: Callable[..., Result], flags: list[str], header: str, expected: str) -> None:
    api = FakeApi([_state({"a": 1}, 4)])
    result = cli(["--output", "json", "state", "put", "team.cfg", "--value", '{"a": 1}', *flags], api)
    assert result.code == 0
    assert api.requests[0].headers[header] == expected
    assert json.loads(result.out)["version"] == 4


def test_state_patch_sends_a_merge_patch(cli: Callable[..., Result]) -> None:
    api = FakeApi([_state({"a": 1, "b": 2}, 5)])
    result = cli(["state", "patch", "team.cfg", "--value", '{"b": 2}', "--if-match", "4"], api)
    assert result.code == 0
    sent = api.requests[0]
    assert (sent.method, sent.headers["Content-Type"], sent.headers["If-Match"]) == (
        "PATCH",
        "application/merge-patch+json",
        '"4"',
    )
    assert json.loads(sent.content) == {"b": 2}
    assert "version 5" in result.err


def test_state_recover_calls_again_with_next_until_done_and_sums_the_counts(cli: Callable[..., Result]) -> None:
    api = FakeApi(
        [
            answer(200, {"done": False, "next": {"gists": ["g2", "g3"], "skip": 4}, "counts": {"keys_recovered": 50}}),
            answer(200, {"done": True, "next": None, "counts": {"keys_recovered": 7, "tombstones_recovered": 1}}),
        ]
    )
    result = cli(["--output", "json", "state", "recover", "--namespace", "team", "--max-revisions", "5"], api)
    assert result.code == 0, result.err
    bodies = [json.loads(r.content) for r in api.requests]
    assert bodies == [
        {"max_revisions": 5, "namespaces": ["team"]},
        {"max_revisions": 5, "namespaces": ["team"], "gists": ["g2", "g3"], "skip": 4},
    ]
    report = json.loads(result.out)
    assert report["counts"] == {"keys_recovered": 57, "tombstones_recovered": 1} and report["calls"] == 2


def test_state_recover_refused_is_exit_3(cli: Callable[..., Result]) -> None:
    result = cli(["state", "recover"], FakeApi([problem(403, "FORBIDDEN", "Forbidden", "admin only")]))
    assert result.code == 3 and "Forbidden" in result.err


def test_state_diff_is_a_unified_diff_of_pretty_json(cli: Callable[..., Result]) -> None:
    api = FakeApi([_state({"a": 1, "keep": True}, 1), _state({"a": 2, "keep": True}, 3)])
    result = cli(["state", "diff", "team.cfg", "1"], api)
    assert result.code == 0
    assert api.requests[0].url.params["version"] == "1"
    assert "version" not in api.requests[1].url.params
    lines = result.out.splitlines()
    assert lines[:2] == ["--- team.cfg@1", "+++ team.cfg@3"]
    assert '-  "a": 1,' in lines
    assert '+  "a": 2,' in lines
    assert '   "keep": true' in lines


def test_health_shows_a_table_and_exits_4_when_unhealthy(cli: Callable[..., Result]) -> None:
    report = {
        "status": "unhealthy",
        "checks": {"dynamodb": {"status": "failing", "latency_ms": 3.2}, "sqs": {"status": "ok", "latency_ms": 1}},
    }
    api = FakeApi([answer(503, report, content_type="application/json")])
    result = cli(["health"], api)
    assert result.code == 4
    assert "unhealthy" in result.out
    assert "dynamodb" in result.out
    assert "failing" in result.out
    assert "Authorization" not in api.requests[0].headers  # /v1/health is open


def test_keys_create_prints_the_new_key_once(cli: Callable[..., Result], capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi([answer(201, {"key_id": "k1", "api_key": "cg_new_key"})])
    result = cli(["keys", "create", "--name", "ci", "-p", "commands.run:echo", "--quota", "10", "--window", "60"], api)
    assert result.code == 0
    assert "cg_new_key" in result.out
    assert json.loads(api.requests[0].content) == {
        "name": "ci",
        "permissions": ["commands.run:echo"],
        "rate_limit": {"quota": 10, "window_s": 60},
    }


def test_config_file_readable_by_others_is_refused(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CMDGATE_API_KEY")
    path = Path(os.environ["CMDGATE_CONFIG"])
    write_config(path, FileConfig(url="http://api.test", api_key=KEY))
    path.chmod(0o644)
    api = FakeApi([answer(200, {"keys": []})])
    result = cli(["keys", "list"], api)
    assert result.code == 2
    assert "chmod 600" in result.err
    assert api.requests == []


def test_configure_writes_a_0600_file_the_cli_then_uses(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CMDGATE_API_KEY")
    monkeypatch.delenv("CMDGATE_URL")
    monkeypatch.setattr("sys.stdin", _Stdin(KEY + "\n"))
    assert cli(["configure", "--set-url", "http://api.test", "--api-key-stdin"]).code == 0
    path = Path(os.environ["CMDGATE_CONFIG"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert tomllib.loads(path.read_text()) == {"url": "http://api.test", "api_key": KEY}
    assert read_config(path) == FileConfig(url="http://api.test", api_key=KEY)
    api = FakeApi([answer(200, {"keys": [], "next_cursor": None})])
    assert cli(["keys", "list"], api).code == 0
    assert api.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert str(api.requests[0].url).startswith("http://api.test/v1/admin/keys")


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def readline(self) -> str:
        return self.text


def test_lists_follow_next_cursor(cli: Callable[..., Result]) -> None:
    api = FakeApi(
        [
            answer(200, {"commands": [{"name": "a"}], "next_cursor": "c2"}),
            answer(200, {"commands": [{"name": "b"}], "next_cursor": None}),
        ]
    )
    result = cli(["-o", "json", "commands", "list"], api)
    assert [c["name"] for c in json.loads(result.out)["commands"]] == ["a", "b"]
    assert api.requests[1].url.params["cursor"] == "c2"


def test_cli_pins_match_between_requirements_and_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [
        line.strip()
        for line in (ROOT / "requirements" / "cli.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(project["dependencies"]) == sorted(pinned)
    assert all("==" in requirement for requirement in pinned)
    assert project["scripts"]["cmdgate"] == "cmdgate_cli.app:run"
    assert "-r cli.txt" in (ROOT / "requirements" / "dev.txt").read_text().splitlines()


@pytest.mark.parametrize("bad_key", ["two words", "line\nbreak", "caf\u00e9"])
def test_a_malformed_key_is_refused_locally_and_never_echoed(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, bad_key: str
) -> None:
    monkeypatch.setenv("CMDGATE_API_KEY", bad_key)
    api = FakeApi([answer(200, {"keys": []})])
    result = cli(["keys", "list"], api)
    assert result.code == 2
    assert bad_key not in result.out + result.err
    assert api.requests == []


def test_a_transport_error_quoting_the_key_is_scrubbed(cli: Callable[..., Result]) -> None:
    def leaky(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value {request.headers['Authorization']!r}")

    result = cli(["keys", "list"], FakeApi([leaky]))  # the fixture asserts the key is not printed
    assert result.code == 4
    assert "<api key>" in result.err


def test_a_bug_in_the_cli_is_one_line_not_a_traceback(cli: Callable[..., Result]) -> None:
    def broken(_: httpx.Request) -> httpx.Response:
        raise RuntimeError("unexpected")

    result = cli(["keys", "list"], FakeApi([broken]))
    assert result.code == 70
    assert "Unexpected error in the CLI" in result.err


def test_dlq_redrive_sends_the_ids_and_lists_the_outcome(cli: Callable[..., Result]) -> None:
    api = FakeApi([answer(200, {"redriven": ["e1"], "skipped": ["e2"]})])
    result = cli(["dlq", "redrive", "e1", "e2"], api)
    assert result.code == 0
    assert json.loads(api.requests[0].content) == {"execution_ids": ["e1", "e2"]}
    assert "redriven e1" in result.out
    assert "skipped  e2" in result.out
    everything = FakeApi([answer(200, {"redriven": [], "skipped": []})])
    assert cli(["dlq", "redrive"], everything).code == 0
    assert json.loads(everything.requests[0].content) == {}  # the server takes its first page of dead letters


def test_commands_show_finds_one_command_or_refuses(cli: Callable[..., Result]) -> None:
    listing = {"commands": [{"name": "echo", "description": "Echo", "params_schema": {"type": "object"}}]}
    shown = cli(["-o", "json", "commands", "show", "echo"], FakeApi([answer(200, listing)]))
    assert (shown.code, json.loads(shown.out)["params_schema"]) == (0, {"type": "object"})
    missing = cli(["commands", "show", "deploy"], FakeApi([answer(200, listing)]))
    assert missing.code == 3
    assert "No such command" in missing.err


def test_server_text_cannot_inject_markup(cli: Callable[..., Result]) -> None:
    api = FakeApi([problem(403, "FORBIDDEN", "Forbidden [bold]x[/bold]", "detail [red]y[/red]")])
    result = cli(["keys", "list"], api)
    assert "[bold]x[/bold]" in result.err
    assert "[red]y[/red]" in result.err


@pytest.mark.parametrize("url", ["not a url", "ftp://host", "http://"])
def test_a_bad_url_is_a_usage_error(cli: Callable[..., Result], url: str) -> None:
    result = cli(["--url", url, "health"])
    assert result.code == 2
    assert "Bad API URL" in result.err


class _Clock:
    """A fake monotonic clock that a fake server advances."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_long_polling_server_is_not_polled_in_between() -> None:
    clock, sleeps = _Clock(), list[float]()

    def long_poll(request: httpx.Request) -> httpx.Response:
        clock.now += float(request.url.params["wait"])  # the server held the request that long
        done = len(api.requests) >= 3
        return answer(200, _execution("succeeded" if done else "running"))(request)

    api = FakeApi([long_poll])
    ended = waiting.wait_for_end(_api(api), "e1", 300, lambda _: None, sleep=sleeps.append, clock=clock)
    assert ended["status"] == "succeeded"
    assert sleeps == []
    assert [r.url.params["wait"] for r in api.requests] == ["20", "20", "20"]


def test_a_server_that_answers_at_once_is_polled_with_growing_pauses() -> None:
    clock, sleeps = _Clock(), list[float]()

    def pause(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    api = FakeApi([answer(200, _execution("queued"))] * 5 + [answer(200, _execution("succeeded"))])
    waiting.wait_for_end(_api(api), "e1", 300, lambda _: None, sleep=pause, clock=clock)
    assert sleeps == [0.25, 0.5, 1.0, 2.0, 2.0]


def test_audit_follows_the_cursor_with_the_filters_and_stops_at_the_limit(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one table row per entry
    first = {
        "at": "2026-12-01T10:00:00.000Z",
        "action": "command.run",
        "principal": "key:k1",
        "request_id": "r1",
        "source_ip": "127.0.0.1",
        "execution_id": "e1",
        "command": "echo",
        "idempotency_key": "i-1",
    }
    second = {**first, "action": "state.written", "request_id": "r2", "key": "prefs", "version": 3}
    del second["execution_id"], second["command"], second["idempotency_key"]
    pages = [
        answer(200, {"entries": [first], "next_cursor": "c2"}),
        answer(200, {"entries": [second], "next_cursor": None}),
    ]
    api = FakeApi(pages)
    result = cli(["-o", "json", "audit", "--principal", "key:k1", "--since", "2026-12-01T00:00:00Z"], api)
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"entries": [first, second]}
    sent = [dict(r.url.params) for r in api.requests]
    assert sent[0] == {"principal": "key:k1", "since": "2026-12-01T00:00:00Z", "limit": "100"}
    assert sent[1]["cursor"] == "c2" and sent[1]["principal"] == "key:k1"
    text = cli(["audit", "--limit", "1"], FakeApi(pages))
    assert text.code == 0
    assert "command.run" in text.out and "execution_id=e1" in text.out and "state.written" not in text.out


def test_audit_refused_is_exit_3_with_the_problem(cli: Callable[..., Result]) -> None:
    refused = problem(400, "BAD_REQUEST", "Bad request", "action must be one of key.created, ...")
    result = cli(["audit", "--action", "nope"], FakeApi([refused]))
    assert result.code == 3
    assert "action must be one of" in result.err
