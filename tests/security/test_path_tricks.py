"""Path tricks in state keys and execution ids: dot segments, encoded slashes, NUL, unicode look-alikes.

Sent byte for byte (http.client: httpx would normalise the dot segments away), each is a 4xx
problem+json, never a 2xx or a 5xx, and no state item is written: a principal scoped to
`team-a.*` cannot write a `team-b` key through `team-a.x/../team-b.y`, and nobody can write a
`system.*` key through a look-alike.
"""

from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import Stack
from tests.security.effects import state_items

pytestmark = pytest.mark.integration


def raw(stack: Stack, method: str, path: str, token: str, body: object = None) -> tuple[int, str, dict[str, str]]:
    """(status, content type, problem) of a request whose path goes out exactly as given."""
    url = urlsplit(stack.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "If-None-Match": "*"}
    try:
        connection.request(
            method, url.path.rstrip("/") + path, body=None if body is None else json.dumps(body), headers=headers
        )
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        content_type = response.getheader("Content-Type") or ""
    finally:
        connection.close()
    problem = json.loads(text) if content_type.startswith("application/problem+json") else {}
    return response.status, content_type, problem


def assert_refused(answer: tuple[int, str, dict[str, str]]) -> None:
    status, content_type, problem = answer
    assert 400 <= status < 500, answer
    assert content_type.startswith("application/problem+json"), answer
    assert problem.get("status") == status and problem.get("code"), answer


def test_a_scoped_writer_cannot_step_out_of_its_prefix(stack: Stack) -> None:
    marker = uuid.uuid4().hex[:8]
    mine, theirs = f"team-a.{marker}", f"team-b.{marker}"
    writer = stack.create_key(["state.write:team-a.*", "state.read:team-a.*"])
    tricks = [
        f"/v1/state/{mine}/../{theirs}",
        f"/v1/state/{mine}/%2e%2e/{theirs}",
        f"/v1/state/{mine}%2F..%2F{theirs}",
        f"/v1/state/{mine}%2f%2e%2e%2f{theirs}",
        f"/v1/state/{mine}%5C..%5C{theirs}",
        f"/v1/state/..%2F{theirs}",
        f"/v1/state/%2e%2e%2f{theirs}",
        f"/v1/state/{mine}%00{theirs}",
        f"/v1/state/{mine}%0d%0aX-Injected:%201",
        f"/v1/state/{theirs.replace('team-b', 'team-a%E2%80%8B')}",  # a zero-width space after team-a
    ]
    for path in tricks:
        assert_refused(raw(stack, "PUT", path, writer, {"v": 1}))
    assert state_items(stack, marker) == []
    # The plain form of its own key still works.
    status, _, _ = raw(stack, "PUT", f"/v1/state/{mine}", writer, {"v": 1})
    assert status == 201
    assert [item["pk"]["S"] for item in state_items(stack, theirs)] == []


def test_look_alike_and_encoded_names_never_reach_a_system_key(stack: Stack) -> None:
    before = {item["sk"]["S"]: item.get("version") for item in state_items(stack, "key#system.")}
    tricks = [
        "/v1/state/%C5%BFystem.command-stats",  # U+017F LATIN SMALL LETTER LONG S (casefolds to s)
        "/v1/state/%EF%BD%93ystem.command-stats",  # U+FF53 FULLWIDTH LATIN SMALL LETTER S
        "/v1/state/%D1%95ystem.command-stats",  # U+0455 CYRILLIC SMALL LETTER DZE
        "/v1/state/SYSTEM.command-stats",
        "/v1/state/system.command-stats%00",
        "/v1/state/system%2Ecommand-stats",
        "/v1/state/x/../system.command-stats",
        "/v1/state/.%2E/state/system.command-stats",
    ]
    for path in tricks:
        assert_refused(raw(stack, "PUT", path, stack.admin_key, {"forged": True}))
    after = {item["sk"]["S"]: item.get("version") for item in state_items(stack, "key#system.")}
    assert set(after) == set(before)
    assert all("forged" not in json.dumps(item) for item in state_items(stack, "system."))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/executions/..",
        "/v1/executions/..%2F..%2Fadmin%2Fkeys",
        "/v1/executions/%2e%2e%2fadmin%2fkeys",
        "/v1/executions/x%00y",
        "/v1/executions/%00",
        "/v1/executions/" + "a" * 2000,
        "/v1/executions/%C5%BF",
        "/v1/executions/x/../../admin/keys",
    ],
    ids=["dots", "encoded-slashes", "lower-encoded", "nul", "only-nul", "long", "unicode", "raw-dots"],
)
def test_execution_ids_with_path_tricks_are_refused(stack: Stack, path: str) -> None:
    owner = stack.create_key(["commands.run:echo"])
    assert_refused(raw(stack, "GET", path, owner))
    assert_refused(raw(stack, "POST", path + "/cancel", owner))
