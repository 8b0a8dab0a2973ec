"""The github pack against the loopback GitHub stand-in (its dispatch endpoints and fault modes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cmdgate.breaker import BreakerStore, InMemoryBreakerStore
from cmdgate.commands import CommandContext, CommandError, DependencyRefused, TransientCommandError
from cmdgate.config import Settings
from cmdgate_commands.github import client, repository_dispatch, workflow_dispatch
from cmdgate_commands.github.params import RepositoryDispatchParams, WorkflowDispatchParams
from cmdgate_local.gist_server import GistServer

DISPATCH_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dispatch"
GIST_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gist"


class FakeServices:
    """Settings naming both tokens, an in-memory breaker store, and secrets by ARN."""

    def __init__(self, api_url: str, dispatch_secret: str = DISPATCH_SECRET) -> None:
        self.settings = Settings(
            gist_api_url=api_url,
            github_token_secret_arn=GIST_SECRET,
            github_dispatch_token_secret_arn=dispatch_secret,
        )
        self.store = InMemoryBreakerStore()
        self.secrets_read: list[str] = []

    def breaker_store(self) -> BreakerStore:
        return self.store

    def secret(self, arn: str) -> str:
        self.secrets_read.append(arn)
        return {DISPATCH_SECRET: "dispatch-token", GIST_SECRET: "gist-token"}[arn]

    def state_service(self, remaining_s: Any = None) -> Any:
        raise AssertionError("the github pack uses no state")

    def aws_client(self, service: str) -> Any:
        raise AssertionError("the github pack calls no AWS service")


def context(services: FakeServices, timeout_s: float = 15) -> CommandContext:
    return CommandContext("exec-1", "principal-1", 1, time.monotonic() + timeout_s, services=services)


@pytest.fixture(scope="module")
def server() -> Iterator[GistServer]:
    running = GistServer(port=0).start()
    yield running
    running.stop()


@pytest.fixture
def github(server: GistServer) -> Iterator[GistServer]:
    server.app.reset()
    yield server
    server.app.clear_fault()


def workflow(**overrides: Any) -> WorkflowDispatchParams:
    fields = {"owner": "octo", "repo": "app", "workflow": "deploy.yml", "ref": "main", **overrides}
    return WorkflowDispatchParams.model_validate(fields)


def test_workflow_dispatch_reaches_github_with_the_dispatch_token(github: GistServer) -> None:
    services = FakeServices(github.url)
    result = workflow_dispatch(workflow(inputs={"env": "prod", "dry_run": True}), context(services))
    assert result == {"dispatched": True, "owner": "octo", "repo": "app", "workflow": "deploy.yml", "ref": "main"}
    [recorded] = github.app.dispatch_log()
    assert (recorded["kind"], recorded["workflow_id"], recorded["ref"]) == ("workflow_dispatch", "deploy.yml", "main")
    assert recorded["inputs"] == {"env": "prod", "dry_run": True}
    assert services.secrets_read == [DISPATCH_SECRET]  # never the state sync's gist token


def test_repository_dispatch_reaches_github(github: GistServer) -> None:
    params = RepositoryDispatchParams(owner="octo", repo="app", event_type="deploy", client_payload={"sha": "abc"})
    assert repository_dispatch(params, context(FakeServices(github.url)))["dispatched"] is True
    [recorded] = github.app.dispatch_log()
    assert (recorded["event_type"], recorded["client_payload"]) == ("deploy", {"sha": "abc"})


def test_the_dispatch_token_is_its_own_write_budget(github: GistServer) -> None:
    github.app.set_limits(secondary_per_minute=1)
    try:
        services = FakeServices(github.url)
        workflow_dispatch(workflow(), context(services))
        with pytest.raises(DependencyRefused) as refused:  # GitHub's secondary limit: nothing dispatched
            workflow_dispatch(workflow(), context(services))
        assert refused.value.retry_after_s >= 1
        gist = httpx.post(
            f"{github.url}/gists",
            json={"files": {"a.json": {"content": "1"}}},
            headers={"Authorization": "Bearer gist-token"},
        )
        assert gist.status_code == 201  # the state sync's token still has its budget
    finally:
        github.app.set_limits(secondary_per_minute=80)


def test_a_5xx_is_a_clear_error_never_retried_and_the_breaker_opens(github: GistServer) -> None:
    github.app.set_fault("502", path_prefix="/repos/")
    services = FakeServices(github.url)
    for _ in range(4):  # the breaker's min_calls
        with pytest.raises(CommandError) as failed:
            workflow_dispatch(workflow(), context(services))
        assert (failed.value.status, failed.value.code) == (502, "UPSTREAM_ERROR")
    assert github.app.stats()["faults_injected"] == 4  # one request per dispatch: a POST is never repeated
    with pytest.raises(client.GitHubUnavailable) as refused:
        workflow_dispatch(workflow(), context(services))
    assert refused.value.code == "DEPENDENCY_UNAVAILABLE" and refused.value.retry_after_s >= 1
    assert github.app.stats()["faults_injected"] == 4  # refused without a request


def test_a_timeout_is_504_and_says_the_dispatch_may_have_happened(github: GistServer) -> None:
    github.app.set_fault("timeout", delay_s=5, path_prefix="/repos/")
    with pytest.raises(CommandError) as failed:
        workflow_dispatch(workflow(), context(FakeServices(github.url), timeout_s=1.5))
    assert (failed.value.status, failed.value.code) == (504, "UPSTREAM_TIMEOUT")
    assert "may or may not" in failed.value.detail


def test_a_lost_answer_is_not_retried_so_the_workflow_runs_once(github: GistServer) -> None:
    # "lost": GitHub applied the dispatch, then its answer went astray (a 502 page).
    github.app.set_fault("lost", count=1, path_prefix="/repos/")
    with pytest.raises(CommandError) as failed:
        workflow_dispatch(workflow(), context(FakeServices(github.url)))
    assert failed.value.status == 502
    assert len(github.app.dispatch_log()) == 1  # sent again, it would have started a second run


def test_a_secondary_rate_limit_429_is_a_refusal_with_githubs_wait(github: GistServer) -> None:
    github.app.set_fault("429", count=1, retry_after=42, path_prefix="/repos/")
    with pytest.raises(client.GitHubUnavailable) as refused:
        workflow_dispatch(workflow(), context(FakeServices(github.url)))
    assert refused.value.retry_after_s == 42
    assert github.app.dispatch_log() == []


def test_githubs_refusal_is_answered_with_its_message(github: GistServer) -> None:
    # Past params validation (the model refuses these too): GitHub's 422 is passed on.
    services = FakeServices(github.url)
    with pytest.raises(CommandError) as refused:
        client.dispatch(
            client.http_client(),
            github.url,
            "/repos/octo/app/dispatches",
            {"event_type": ""},
            "dispatch-token",
            services.store,
            lambda: 5.0,
        )
    assert (refused.value.status, refused.value.code) == (422, "UPSTREAM_REJECTED")
    assert "event_type" in refused.value.detail


def test_a_connect_failure_is_retried_because_nothing_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(204)

    monkeypatch.setattr(client, "sleep", lambda seconds: None)
    mock = httpx.Client(transport=httpx.MockTransport(answer))
    client.dispatch(
        mock,
        "https://api.test",
        "/repos/o/r/dispatches",
        {"event_type": "x"},
        "t",
        InMemoryBreakerStore(),
        lambda: 10.0,
    )
    assert len(sent) == 2
    assert sent[1].headers["Authorization"] == "Bearer t"
    assert sent[1].headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_unreachable_github_is_transient() -> None:
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    services = FakeServices(closed)
    with pytest.raises(TransientCommandError) as failed:
        workflow_dispatch(workflow(), context(services, timeout_s=3))
    assert failed.value.code == "UPSTREAM_UNREACHABLE"


def test_without_a_dispatch_token_the_command_says_so() -> None:
    services = FakeServices("https://api.test", dispatch_secret="")
    with pytest.raises(CommandError) as failed:
        workflow_dispatch(workflow(), context(services))
    assert (failed.value.status, failed.value.code) == (503, "COMMAND_NOT_CONFIGURED")
    assert services.secrets_read == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"owner": "-octo"},
        {"owner": "a" * 40},
        {"repo": ".."},
        {"repo": "app/../x"},
        {"workflow": "../deploy.yml"},
        {"workflow": "deploy.sh"},
        {"ref": "main..evil"},
        {"ref": "main branch"},
        {"ref": ""},
        {"inputs": {f"i{n}": "v" for n in range(26)}},
        {"inputs": {"bad key": "v"}},
        {"inputs": {"nested": {"no": "objects"}}},
        {"extra": 1},
    ],
)
def test_workflow_params_github_would_refuse_are_refused_first(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        workflow(**overrides)


@pytest.mark.parametrize(
    "payload",
    [{f"k{n}": n for n in range(11)}, {"big": "x" * (64 * 1024)}],
)
def test_repository_payloads_over_githubs_limits_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RepositoryDispatchParams(owner="octo", repo="app", event_type="deploy", client_payload=payload)


def test_path_segments_are_percent_encoded() -> None:
    assert client.path("repos", "o", "a b", "x/y") == "/repos/o/a%20b/x%2Fy"
