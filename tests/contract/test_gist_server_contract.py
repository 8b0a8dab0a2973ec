"""Contract: the loopback Gist server answers as GitHub's own description says.

Every answer is checked with openapi-core against GitHub's published OpenAPI
description of the gist endpoints, vendored with its origin and licence in
local/cmdgate_local/reference/. Where GitHub really behaves beyond that
description, the behaviour is listed once in UNDOCUMENTED_BEHAVIOURS; the test
proves each entry is truly undocumented and checks its body against the
description's `basic-error` schema instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from cmdgate_local.gist_server import GistServer

SPEC_PATH = Path(__file__).resolve().parents[2] / "local" / "cmdgate_local" / "reference" / "github-gists-openapi.json"
# The description's only server; loopback answers are validated as if they came from it.
GITHUB_API = "https://api.github.com"
TOKEN = "ghp_contract_test_token"
API_VERSION = "2022-11-28"

# (method, path template, status, why): the single record of where GitHub's real
# behaviour, as this server copies it, goes beyond GitHub's own description.
UNDOCUMENTED_BEHAVIOURS: list[tuple[str, str, int, str]] = [
    (
        "PATCH",
        "/gists/{gist_id}",
        400,
        "GitHub refuses conditional headers (If-Match, If-None-Match, If-Modified-Since,"
        " If-Unmodified-Since) on unsafe requests with 400; the description documents"
        " no conditional PATCH and no 400",
    ),
    (
        "POST",
        "/gists",
        400,
        "a body that is not JSON gets 400 'Problems parsing JSON'; the description documents only 422 for bad bodies",
    ),
    (
        "GET",
        "/gists/{gist_id}",
        401,
        "no token: 401 'Requires authentication' (this stand-in requires a token even"
        " for reads); the description lists no 401 for any gist operation",
    ),
    (
        "PATCH",
        "/gists/{gist_id}",
        401,
        "a refused token: 401 'Bad credentials'; no 401 is described",
    ),
    (
        "PATCH",
        "/gists/{gist_id}",
        403,
        "primary limit exhausted (x-ratelimit-remaining: 0) or secondary limit hit"
        " (Retry-After); the description lists no 403 for an update",
    ),
    (
        "PATCH",
        "/gists/{gist_id}",
        429,
        "secondary limit answered as 429 + Retry-After (GitHub's docs allow 403 or"
        " 429); the description has no 429 anywhere",
    ),
    (
        "POST",
        "/gists",
        429,
        "secondary limit answered as 429 + Retry-After on create; no 429 is described",
    ),
    (
        "GET",
        "/gists/{gist_id}/{sha}",
        304,
        "a conditional GET of a revision answers 304 like any GitHub GET; the"
        " description documents 304 only for the gist and its commits",
    ),
    (
        "GET",
        "/raw/{gist_id}/{sha}/{filename}",
        200,
        "raw_url serves the whole file as text/plain, like gist.githubusercontent.com;"
        " it is outside the API description",
    ),
]


class FakeClock:
    """Moves only when told, so rate-limit windows are crossed without sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OpenAPIRequest:
    """openapi-core's Request protocol over an httpx request, as sent to api.github.com."""

    def __init__(self, request: httpx.Request) -> None:
        self._request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(request.url.query.decode())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return GITHUB_API

    @property
    def path(self) -> str:
        return self._request.url.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self._request.content or None

    @property
    def content_type(self) -> str:
        return str(self._request.headers.get("Content-Type", "application/octet-stream")).lower()


class OpenAPIResponse:
    """openapi-core's Response protocol over an httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return str(self._response.headers.get("Content-Type", "")).lower()

    @property
    def headers(self) -> Headers:
        return Headers(list(self._response.headers.items()))

    @property
    def data(self) -> bytes:
        return self._response.content


@dataclass
class Ctx:
    server: GistServer
    client: httpx.Client
    clock: FakeClock

    def create(self, files: dict[str, str] | None = None) -> dict[str, Any]:
        files = files or {"state.json": '{"version": 1}\n'}
        response = self.client.post(
            "/gists",
            json={
                "description": "contract",
                "public": False,
                "files": {name: {"content": text} for name, text in files.items()},
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        pytest.fail(
            f"GitHub's gist description is missing at {SPEC_PATH} (see local/cmdgate_local/reference/README.md)",
            pytrace=False,
        )
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def openapi(spec: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(spec)


@pytest.fixture(scope="module")
def strict_openapi(spec: dict[str, Any]) -> OpenAPI:
    # The description requires almost nothing (gist-simple has no `required`), so
    # success bodies are also held to "no property the description does not name",
    # which catches a misspelt key the default validation would let through.
    config = Config(additional_properties_default_policy="forbid")
    return OpenAPI.from_dict(spec, config=config)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[GistServer, FakeClock]]:
    clock = FakeClock()
    server = GistServer(port=0, clock=clock).start()
    yield server, clock
    server.stop()


@pytest.fixture
def ctx(running: tuple[GistServer, FakeClock]) -> Iterator[Ctx]:
    server, clock = running
    server.app.reset()
    server.app.set_limits(
        primary_per_hour=5000,
        secondary_per_minute=80,
        secondary_per_hour=500,
        secondary_status=403,
    )
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
    }
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        yield Ctx(server, client, clock)


@pytest.fixture(scope="module")
def basic_error(spec: dict[str, Any]) -> OAS30Validator:
    schema = spec["components"]["schemas"]["basic-error"]
    # basic-error requires nothing, so `{}` would pass; GitHub always sends these two.
    required = {"required": ["message", "documentation_url"]}
    return OAS30Validator({"allOf": [schema, required]})


def assert_documented(api: OpenAPI, response: httpx.Response, *, check_request: bool = True) -> None:
    """The exchange is one the description documents, and matches it."""
    request = OpenAPIRequest(response.request)
    if check_request:
        request_errors = list(api.iter_request_errors(request))
        assert not request_errors, [repr(e.__cause__ or e) for e in request_errors]
    errors = list(api.iter_response_errors(request, OpenAPIResponse(response)))
    assert not errors, [str(e.__cause__ or e)[-400:] for e in errors]


def assert_api_headers(response: httpx.Response) -> None:
    """Headers GitHub puts on every API answer."""
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used"):
        assert response.headers[name].isdigit(), name
    assert int(response.headers["x-ratelimit-reset"]) > 1_600_000_000
    assert response.headers["x-ratelimit-resource"] == "core"
    assert response.headers["X-GitHub-Api-Version-Selected"] == API_VERSION
    if response.content:
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def assert_strong_etag(response: httpx.Response) -> str:
    etag = response.headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag), etag
    return etag


GIST_KEYS = {
    "url", "forks_url", "commits_url", "id", "node_id", "git_pull_url",
    "git_push_url", "html_url", "files", "public", "created_at", "updated_at",
    "description", "comments", "user", "comments_url", "owner", "forks",
    "history", "truncated",
}  # fmt: skip
FILE_KEYS = {
    "filename", "type", "language", "raw_url", "size", "truncated", "content",
}  # fmt: skip
HISTORY_KEYS = {"user", "version", "committed_at", "change_status", "url"}
CHANGE_KEYS = {"total", "additions", "deletions"}


def assert_full_gist(body: dict[str, Any]) -> None:
    """What GitHub really sends, beyond the description's (empty) `required`."""
    assert body.keys() >= GIST_KEYS
    for name, entry in body["files"].items():
        assert entry.keys() >= FILE_KEYS
        assert entry["filename"] == name
    assert body["history"], "a gist always has at least its first revision"
    for item in body["history"]:
        assert item.keys() >= HISTORY_KEYS
        assert item["change_status"].keys() >= CHANGE_KEYS
        assert re.fullmatch(r"[0-9a-f]{40}", item["version"])


# --------------------------------------------------------------- documented answers


def test_create_gist_201(ctx: Ctx, strict_openapi: OpenAPI) -> None:
    response = ctx.client.post(
        "/gists",
        json={
            "description": "Example of a gist",
            "public": "false",
            "files": {"README.md": {"content": "Hello World"}},
        },
    )
    assert response.status_code == 201
    assert_documented(strict_openapi, response)
    assert_api_headers(response)
    body = response.json()
    assert_full_gist(body)
    assert response.headers["Location"] == body["url"]
    assert body["public"] is False
    assert body["files"]["README.md"]["content"] == "Hello World"


def test_get_gist_200_then_304(ctx: Ctx, strict_openapi: OpenAPI) -> None:
    gist = ctx.create()
    response = ctx.client.get(f"/gists/{gist['id']}")
    assert response.status_code == 200
    assert_documented(strict_openapi, response)
    assert_api_headers(response)
    assert_full_gist(response.json())
    etag = assert_strong_etag(response)

    again = ctx.client.get(f"/gists/{gist['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    assert_documented(strict_openapi, again)
    assert_api_headers(again)


def test_update_gist_200_edit_rename_delete(ctx: Ctx, strict_openapi: OpenAPI) -> None:
    gist = ctx.create({"a.json": "{}", "b.txt": "b", "c.md": "c"})
    bodies = [
        {"description": "An updated gist description"},
        {"files": {"a.json": {"content": '{"v": 2}'}}},
        {"files": {"b.txt": {"filename": "renamed.txt"}}},
        {"files": {"c.md": None}},
        # Many files in one body, as GitHub takes them: an edit, a new file, a deletion.
        {"files": {"a.json": {"content": '{"v": 3}'}, "d.json": {"content": "d"}, "d2.json": None}},
    ]
    for body in bodies:
        response = ctx.client.patch(f"/gists/{gist['id']}", json=body)
        assert response.status_code == 200, response.text
        assert_documented(strict_openapi, response)
        assert_api_headers(response)
        assert_full_gist(response.json())
    final = response.json()
    assert set(final["files"]) == {"a.json", "renamed.txt", "d.json"}
    assert final["description"] == "An updated gist description"
    assert len(final["history"]) == 1 + len(bodies)


def test_list_commits_200_paginated_then_304(ctx: Ctx, strict_openapi: OpenAPI) -> None:
    gist = ctx.create()
    for n in range(4):
        patch = {"files": {"state.json": {"content": f'{{"version": {n + 2}}}'}}}
        assert ctx.client.patch(f"/gists/{gist['id']}", json=patch).status_code == 200

    first = ctx.client.get(f"/gists/{gist['id']}/commits", params={"per_page": 2})
    assert first.status_code == 200
    assert_documented(strict_openapi, first)
    assert_api_headers(first)
    assert len(first.json()) == 2
    assert 'rel="next"' in first.headers["Link"]
    assert 'rel="last"' in first.headers["Link"]

    last = ctx.client.get(f"/gists/{gist['id']}/commits", params={"per_page": 2, "page": 3})
    assert_documented(strict_openapi, last)
    assert len(last.json()) == 1
    assert 'rel="prev"' in last.headers["Link"]
    assert 'rel="next"' not in last.headers["Link"]

    etag = assert_strong_etag(first)
    cached = ctx.client.get(
        f"/gists/{gist['id']}/commits",
        params={"per_page": 2},
        headers={"If-None-Match": etag},
    )
    assert cached.status_code == 304
    assert cached.content == b""
    assert_documented(strict_openapi, cached)


def test_list_gists_200_paginated_then_304(ctx: Ctx, strict_openapi: OpenAPI) -> None:
    created = [ctx.create({"manifest.json": "{}", f"k{n}.json": str(n)}) for n in range(3)]
    ctx.clock.advance(5)
    since = ctx.client.patch(f"/gists/{created[0]['id']}", json={"description": "renewed"}).json()["updated_at"]

    first = ctx.client.get("/gists", params={"per_page": 2})
    assert first.status_code == 200
    assert_documented(strict_openapi, first)
    assert_api_headers(first)
    assert [g["id"] for g in first.json()] == [created[0]["id"], created[2]["id"]]
    assert 'rel="next"' in first.headers["Link"]
    for item in first.json():
        assert item.keys() >= GIST_KEYS - {"forks", "history"}
        assert "history" not in item
        for name, entry in item["files"].items():
            assert entry.keys() >= FILE_KEYS - {"truncated", "content"}
            assert entry["filename"] == name and "content" not in entry

    last = ctx.client.get("/gists", params={"per_page": 2, "page": 2})
    assert_documented(strict_openapi, last)
    assert [g["id"] for g in last.json()] == [created[1]["id"]]
    assert 'rel="prev"' in last.headers["Link"]

    recent = ctx.client.get("/gists", params={"since": since})
    assert_documented(strict_openapi, recent)
    assert [g["description"] for g in recent.json()] == ["renewed"]

    etag = assert_strong_etag(first)
    cached = ctx.client.get("/gists", params={"per_page": 2}, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert_documented(strict_openapi, cached)


def test_get_revision_200(ctx: Ctx, strict_openapi: OpenAPI) -> None:
    gist = ctx.create()
    sha = gist["history"][0]["version"]
    patch = {"files": {"state.json": {"content": "new"}}}
    ctx.client.patch(f"/gists/{gist['id']}", json=patch)
    response = ctx.client.get(f"/gists/{gist['id']}/{sha}")
    assert response.status_code == 200
    assert_documented(strict_openapi, response)
    assert_api_headers(response)
    assert_full_gist(response.json())
    assert response.json()["files"]["state.json"]["content"] == '{"version": 1}\n'


def test_delete_gist_204(ctx: Ctx, openapi: OpenAPI) -> None:
    gist = ctx.create()
    response = ctx.client.delete(f"/gists/{gist['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_documented(openapi, response)
    assert ctx.client.get(f"/gists/{gist['id']}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/gists/{id}"),
        ("PATCH", "/gists/{id}"),
        ("DELETE", "/gists/{id}"),
        ("GET", "/gists/{id}/commits"),
        ("GET", "/gists/{id}/{sha}"),
        ("GET", "/gists/{known}/{sha}"),
    ],
)
def test_not_found_404(ctx: Ctx, openapi: OpenAPI, method: str, path: str) -> None:
    known = ctx.create()["id"]
    url = path.format(id="0" * 32, known=known, sha="f" * 40)
    body = {"description": "x"} if method == "PATCH" else None
    response = ctx.client.request(method, url, json=body)
    assert response.status_code == 404
    assert_documented(openapi, response)
    assert_api_headers(response)
    assert response.json()["message"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("POST", {"description": "no files"}),
        ("POST", {"files": {}}),
        ("POST", {"files": {"a.txt": {"content": ""}}}),
        ("POST", {"files": "not an object"}),
        ("POST", {"files": {"a.txt": {"content": 1}}}),
        ("PATCH", {"files": {"state.json": None}}),
        ("PATCH", {"files": {"state.json": {"content": 1}}}),
        ("PATCH", {"description": 5}),
    ],
)
def test_validation_failed_422(ctx: Ctx, openapi: OpenAPI, method: str, body: dict[str, Any]) -> None:
    url = "/gists" if method == "POST" else f"/gists/{ctx.create()['id']}"
    response = ctx.client.request(method, url, json=body)
    assert response.status_code == 422, response.text
    # The request is invalid on purpose; only the answer is held to the description.
    assert_documented(openapi, response, check_request=False)
    assert_api_headers(response)
    assert ctx.server.app.stats()["writes"] == (0 if method == "POST" else 1)


def test_primary_limit_403_where_documented(ctx: Ctx, openapi: OpenAPI) -> None:
    gist = ctx.create()
    ctx.server.app.set_limits(primary_per_hour=2)
    ctx.client.get(f"/gists/{gist['id']}")
    for response in (
        ctx.client.get(f"/gists/{gist['id']}"),
        ctx.client.post("/gists", json={"files": {"a.txt": {"content": "a"}}}),
    ):
        assert response.status_code == 403
        assert_documented(openapi, response)
        assert_api_headers(response)
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert response.json()["message"].startswith("API rate limit exceeded")


def test_secondary_limit_403_on_create(ctx: Ctx, openapi: OpenAPI) -> None:
    ctx.server.app.set_limits(secondary_per_minute=1)
    ctx.create()
    response = ctx.client.post("/gists", json={"files": {"a.txt": {"content": "a"}}})
    assert response.status_code == 403
    assert_documented(openapi, response)
    assert_api_headers(response)
    assert int(response.headers["Retry-After"]) > 0
    assert int(response.headers["x-ratelimit-remaining"]) > 0
    assert "secondary rate limit" in response.json()["message"]


def test_truncated_file_in_200(ctx: Ctx, strict_openapi: OpenAPI) -> None:
    big = "x" * (1024 * 1024 + 10)
    gist = ctx.create({"big.txt": big})
    response = ctx.client.get(f"/gists/{gist['id']}")
    assert_documented(strict_openapi, response)
    entry = response.json()["files"]["big.txt"]
    assert entry["truncated"] is True
    assert entry["size"] == len(big)
    assert len(entry["content"]) == 1024 * 1024
    raw = ctx.client.get(entry["raw_url"])
    assert raw.status_code == 200
    assert raw.text == big


# ------------------------------------------------------------- undocumented answers


def _conditional_patch(ctx: Ctx) -> list[httpx.Response]:
    gist_id = ctx.create()["id"]
    body = {"description": "x"}
    return [
        ctx.client.patch(f"/gists/{gist_id}", json=body, headers={name: value})
        for name, value in (
            ("If-Match", '"abc"'),
            ("If-None-Match", '"abc"'),
            ("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("If-Unmodified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"),
        )
    ]


def _unparsable_create(ctx: Ctx) -> list[httpx.Response]:
    headers = {"Content-Type": "application/json"}
    return [ctx.client.post("/gists", content=b"{not json", headers=headers)]


def _read_without_token(ctx: Ctx) -> list[httpx.Response]:
    gist_id = ctx.create()["id"]
    response = httpx.get(
        f"{ctx.server.url}/gists/{gist_id}",
        headers={"X-GitHub-Api-Version": API_VERSION},
    )
    assert response.json()["message"] == "Requires authentication"
    return [response]


def _update_with_refused_token(ctx: Ctx) -> list[httpx.Response]:
    gist_id = ctx.create()["id"]
    responses = [
        ctx.client.patch(
            f"/gists/{gist_id}",
            json={"description": "x"},
            headers={"Authorization": value},
        )
        for value in ("Bearer", "Basic dXNlcjpwYXNz", "token")
    ]
    assert {r.json()["message"] for r in responses} == {"Bad credentials"}
    return responses


def _rate_limited_updates(ctx: Ctx) -> list[httpx.Response]:
    gist_id = ctx.create()["id"]
    body = {"description": "x"}
    ctx.server.app.set_limits(secondary_per_minute=1)
    secondary = ctx.client.patch(f"/gists/{gist_id}", json=body)
    assert int(secondary.headers["Retry-After"]) > 0
    ctx.server.app.set_limits(secondary_per_minute=80, primary_per_hour=1)
    primary = ctx.client.patch(f"/gists/{gist_id}", json=body)
    assert primary.headers["x-ratelimit-remaining"] == "0"
    return [secondary, primary]


def _secondary_429(ctx: Ctx, method: str) -> list[httpx.Response]:
    gist_id = ctx.create()["id"]
    ctx.server.app.set_limits(secondary_per_minute=1, secondary_status=429)
    if method == "POST":
        body = {"files": {"a.txt": {"content": "a"}}}
        response = ctx.client.post("/gists", json=body)
    else:
        response = ctx.client.patch(f"/gists/{gist_id}", json={"description": "x"})
    assert int(response.headers["Retry-After"]) > 0
    return [response]


def _revision_not_modified(ctx: Ctx) -> list[httpx.Response]:
    gist = ctx.create()
    url = gist["history"][0]["url"].removeprefix(ctx.server.url)
    etag = ctx.client.get(url).headers["ETag"]
    return [ctx.client.get(url, headers={"If-None-Match": etag})]


def _raw_content(ctx: Ctx) -> list[httpx.Response]:
    big = "line\n" * (300 * 1024)  # 1.5 MiB, so the API answer is truncated
    gist = ctx.create({"big.txt": big})
    raw = ctx.client.get(gist["files"]["big.txt"]["raw_url"])
    assert raw.headers["Content-Type"].startswith("text/plain")
    assert raw.text == big
    return [raw]


SCENARIOS: dict[tuple[str, str, int], Callable[[Ctx], list[httpx.Response]]] = {
    ("PATCH", "/gists/{gist_id}", 400): _conditional_patch,
    ("POST", "/gists", 400): _unparsable_create,
    ("GET", "/gists/{gist_id}", 401): _read_without_token,
    ("PATCH", "/gists/{gist_id}", 401): _update_with_refused_token,
    ("PATCH", "/gists/{gist_id}", 403): _rate_limited_updates,
    ("PATCH", "/gists/{gist_id}", 429): lambda ctx: _secondary_429(ctx, "PATCH"),
    ("POST", "/gists", 429): lambda ctx: _secondary_429(ctx, "POST"),
    ("GET", "/gists/{gist_id}/{sha}", 304): _revision_not_modified,
    ("GET", "/raw/{gist_id}/{sha}/{filename}", 200): _raw_content,
}


def test_every_undocumented_behaviour_has_one_scenario() -> None:
    listed = [entry[:3] for entry in UNDOCUMENTED_BEHAVIOURS]
    assert len(listed) == len(set(listed)), "one entry per (method, path, status)"
    assert set(listed) == set(SCENARIOS)


@pytest.mark.parametrize(
    ("method", "path", "status", "why"),
    UNDOCUMENTED_BEHAVIOURS,
    ids=[f"{m} {p} {s}" for m, p, s, _ in UNDOCUMENTED_BEHAVIOURS],
)
def test_undocumented_behaviour(
    ctx: Ctx,
    openapi: OpenAPI,
    basic_error: OAS30Validator,
    method: str,
    path: str,
    status: int,
    why: str,
) -> None:
    responses = SCENARIOS[(method, path, status)](ctx)
    assert responses
    for response in responses:
        assert response.request.method == method
        assert response.status_code == status, response.text
        # Prove the entry is really a deviation: the description has no such answer.
        errors = list(openapi.iter_response_errors(OpenAPIRequest(response.request), OpenAPIResponse(response)))
        expected = PathNotFound if path.startswith("/raw/") else ResponseNotFound
        assert [type(e) for e in errors] == [expected], errors
        if path.startswith("/raw/"):
            continue
        assert_api_headers(response)
        if status == 304:
            assert response.content == b""
        else:
            basic_error.validate(response.json())
