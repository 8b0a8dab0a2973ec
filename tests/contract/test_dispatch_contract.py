"""Contract: the stand-in's Actions dispatch endpoints answer as GitHub's own description says.

Requests and answers are checked with openapi-core against the two paths of GitHub's
description vendored from @octokit/openapi 23.0.2 (local/cmdgate_local/reference/).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI

from cmdgate_local.gist_server import GistServer
from tests.contract.test_gist_server_contract import API_VERSION, FakeClock, OpenAPIRequest, assert_documented

SPEC_PATH = (
    Path(__file__).resolve().parents[2] / "local" / "cmdgate_local" / "reference" / "github-dispatches-openapi.json"
)
TOKEN = "ghp_dispatch_contract_token"
WORKFLOW = "/repos/octo/app/actions/workflows/deploy.yml/dispatches"
REPOSITORY = "/repos/octo/app/dispatches"


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(SPEC_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def server() -> Iterator[GistServer]:
    running = GistServer(port=0, clock=FakeClock()).start()
    yield running
    running.stop()


def github(server: GistServer, token: str = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    return httpx.Client(base_url=server.url, headers={**headers, "X-GitHub-Api-Version": API_VERSION}, timeout=10)


@pytest.fixture
def client(server: GistServer) -> Iterator[httpx.Client]:
    server.app.reset()
    server.app.set_limits(secondary_per_minute=80, secondary_per_hour=500, secondary_status=403)
    with github(server) as opened:
        yield opened


def test_workflow_dispatch_204_is_documented_and_recorded(
    client: httpx.Client, server: GistServer, openapi: OpenAPI
) -> None:
    response = client.post(WORKFLOW, json={"ref": "main", "inputs": {"env": "prod", "dry_run": True}})
    assert response.status_code == 204
    assert response.content == b""
    assert_documented(openapi, response)
    [recorded] = server.app.dispatch_log()
    assert recorded["kind"] == "workflow_dispatch"
    assert (recorded["owner"], recorded["repo"], recorded["workflow_id"]) == ("octo", "app", "deploy.yml")
    assert recorded["ref"] == "main" and recorded["inputs"] == {"env": "prod", "dry_run": True}


def test_repository_dispatch_204_is_documented_and_recorded(
    client: httpx.Client, server: GistServer, openapi: OpenAPI
) -> None:
    response = client.post(REPOSITORY, json={"event_type": "deploy", "client_payload": {"sha": "abc"}})
    assert response.status_code == 204
    assert_documented(openapi, response)
    [recorded] = server.app.dispatch_log()
    assert (recorded["kind"], recorded["event_type"], recorded["client_payload"]) == (
        "repository_dispatch",
        "deploy",
        {"sha": "abc"},
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"event_type": ""},
        {"event_type": "x" * 101},
        {"event_type": "ok", "client_payload": {str(i): i for i in range(11)}},
        {"event_type": "ok", "client_payload": []},
    ],
)
def test_repository_dispatch_the_description_refuses_is_a_documented_422(
    client: httpx.Client, server: GistServer, openapi: OpenAPI, body: dict[str, Any]
) -> None:
    response = client.post(REPOSITORY, json=body)
    assert response.status_code == 422
    assert list(openapi.iter_request_errors(_request(response))), "the description refuses this body too"
    assert_documented(openapi, response, check_request=False)
    assert server.app.dispatch_log() == []


@pytest.mark.parametrize("body", [{}, {"ref": 1}, {"ref": "main", "inputs": {str(i): "v" for i in range(26)}}])
def test_workflow_dispatch_the_description_refuses_is_refused(
    client: httpx.Client, server: GistServer, openapi: OpenAPI, body: dict[str, Any]
) -> None:
    response = client.post(WORKFLOW, json=body)
    # GitHub answers 422; the description lists only 200/204 for this operation.
    assert response.status_code == 422
    assert {"message", "documentation_url"} <= response.json().keys()
    assert list(openapi.iter_request_errors(_request(response))), "the description refuses this body too"
    assert server.app.dispatch_log() == []


def test_a_fault_narrowed_to_dispatch_paths_spares_the_gist_api(client: httpx.Client, server: GistServer) -> None:
    server.app.set_fault("502", path_prefix="/repos/")
    try:
        assert client.post(WORKFLOW, json={"ref": "main"}).status_code == 502
        created = client.post("/gists", json={"files": {"a.json": {"content": "1"}}})
        assert created.status_code == 201
    finally:
        server.app.clear_fault()
    assert server.app.dispatch_log() == []


def test_dispatches_spend_their_own_tokens_secondary_limit(client: httpx.Client, server: GistServer) -> None:
    server.app.set_limits(secondary_per_minute=2)
    assert client.post(REPOSITORY, json={"event_type": "a"}).status_code == 204
    assert client.post(WORKFLOW, json={"ref": "main"}).status_code == 204
    refused = client.post(REPOSITORY, json={"event_type": "c"})
    assert refused.status_code == 403 and "Retry-After" in refused.headers
    with github(server, "ghp_another_token_for_gists") as other:
        assert other.post("/gists", json={"files": {"a.json": {"content": "1"}}}).status_code == 201


def _request(response: httpx.Response) -> OpenAPIRequest:
    return OpenAPIRequest(response.request)
