"""Behaviour of the loopback Gist server (the schema is the contract test's job)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cmdgate_local.gist_server import GistApp, GistServer

TOKEN = "ghp_unit_test_token"
MIB = 1024 * 1024


class FakeClock:
    """Moves only when told, so rate-limit windows are crossed without sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[GistServer]:
    gist_server = GistServer(port=0, clock=clock).start()
    yield gist_server
    gist_server.stop()


@pytest.fixture
def client(server: GistServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-GitHub-Api-Version": "2022-11-28"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as c:
        yield c


def create(client: httpx.Client, content: str = "v1") -> dict[str, Any]:
    response = client.post("/gists", json={"files": {"state.json": {"content": content}}})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def patch(client: httpx.Client, gist_id: str, content: str) -> httpx.Response:
    body = {"files": {"state.json": {"content": content}}}
    return client.patch(f"/gists/{gist_id}", json=body)


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


# ------------------------------------------------------------------ revisions


def test_each_patch_makes_a_new_sha_and_history_grows_newest_first(client: httpx.Client, clock: FakeClock) -> None:
    gist = create(client)
    shas = [gist["history"][0]["version"]]
    for n in range(2, 5):
        clock.advance(10)
        response = patch(client, gist["id"], f"v{n}")
        assert response.status_code == 200
        history = response.json()["history"]
        assert history[0]["version"] not in shas
        shas.insert(0, history[0]["version"])
        assert [item["version"] for item in history] == shas
    committed = [item["committed_at"] for item in history]
    assert committed == sorted(committed, reverse=True)
    assert len(set(shas)) == 4
    assert all(len(sha) == 40 and int(sha, 16) >= 0 for sha in shas)


def test_change_status_counts_lines(client: httpx.Client) -> None:
    gist = create(client, "a\nb\nc\n")
    assert gist["history"][0]["change_status"] == {
        "total": 3,
        "additions": 3,
        "deletions": 0,
    }
    latest = patch(client, gist["id"], "a\nB\nc\nd\n").json()["history"][0]
    assert latest["change_status"] == {"total": 3, "additions": 2, "deletions": 1}


def test_old_sha_returns_old_content_and_never_changes(client: httpx.Client) -> None:
    gist = create(client, "first")
    old_sha = gist["history"][0]["version"]
    patch(client, gist["id"], "second")
    before = client.get(f"/gists/{gist['id']}/{old_sha}")
    patch(client, gist["id"], "third")
    after = client.get(f"/gists/{gist['id']}/{old_sha}")

    assert before.status_code == after.status_code == 200
    assert after.json()["files"]["state.json"]["content"] == "first"
    assert [h["version"] for h in after.json()["history"]] == [old_sha]
    assert before.headers["ETag"] == after.headers["ETag"]
    current = client.get(f"/gists/{gist['id']}").json()
    assert current["files"]["state.json"]["content"] == "third"
    assert client.get(f"/gists/{gist['id']}/{'0' * 40}").status_code == 404


def test_rename_and_delete_files(client: httpx.Client) -> None:
    response = client.post(
        "/gists",
        json={"files": {"a.txt": {"content": "a"}, "b.txt": {"content": "b"}}},
    )
    gist_id = response.json()["id"]
    renamed = client.patch(f"/gists/{gist_id}", json={"files": {"a.txt": {"filename": "c.txt"}}})
    assert renamed.json()["files"]["c.txt"]["content"] == "a"
    deleted = client.patch(f"/gists/{gist_id}", json={"files": {"b.txt": None}})
    assert set(deleted.json()["files"]) == {"c.txt"}
    last = client.patch(f"/gists/{gist_id}", json={"files": {"c.txt": None}})
    assert last.status_code == 422, "a gist keeps at least one file"


def test_commits_are_newest_first_and_paginated(client: httpx.Client) -> None:
    gist = create(client, "v1")
    for n in range(2, 6):
        patch(client, gist["id"], f"v{n}")
    history = client.get(f"/gists/{gist['id']}").json()["history"]
    pages = [client.get(f"/gists/{gist['id']}/commits", params={"per_page": 2, "page": p}) for p in (1, 2, 3)]
    listed = [item["version"] for page in pages for item in page.json()]
    assert listed == [item["version"] for item in history]
    assert 'page=2>; rel="next"' in pages[0].headers["Link"]
    assert 'page=3>; rel="last"' in pages[0].headers["Link"]
    assert 'rel="next"' not in pages[2].headers["Link"]


def test_one_patch_writes_many_files_and_makes_one_revision(server: GistServer, client: httpx.Client) -> None:
    gist = client.post(
        "/gists",
        json={"files": {"manifest.json": {"content": "m1"}, "k1.json": {"content": "1"}, "k2.json": {"content": "2"}}},
    ).json()
    body = {
        "files": {
            "manifest.json": {"content": "m2"},
            "k1.json": {"content": "1b"},
            "k2.json": None,
            "k3.json": {"content": "3"},
        }
    }
    response = client.patch(f"/gists/{gist['id']}", json=body)
    assert response.status_code == 200, response.text
    files = response.json()["files"]
    assert {name: f["content"] for name, f in files.items()} == {"manifest.json": "m2", "k1.json": "1b", "k3.json": "3"}
    assert len(response.json()["history"]) == 2  # the four changes are one revision
    assert server.app.stats()["writes"] == 2


def test_a_multi_file_patch_is_validated_whole_and_refused_whole(server: GistServer, client: httpx.Client) -> None:
    gist = client.post("/gists", json={"files": {"a.json": {"content": "a"}, "b.json": {"content": "b"}}}).json()
    refused = [
        {"files": {"a.json": {"content": "a2"}, "b.json": {"content": ""}}},  # empty content
        {"files": {"a.json": {"content": "a2"}, "b.json": {"content": 7}}},  # not a string
        {"files": {"a.json": {"content": "a2"}, "new.json": {"filename": "n.json"}}},  # a new file needs content
        {"files": {"a.json": None, "b.json": None}},  # no file left
        {"files": ["a.json"]},  # files must be a map
    ]
    for body in refused:
        response = client.patch(f"/gists/{gist['id']}", json=body)
        assert response.status_code == 422, body
    current = client.get(f"/gists/{gist['id']}").json()
    assert {name: f["content"] for name, f in current["files"].items()} == {"a.json": "a", "b.json": "b"}
    assert server.app.stats()["writes"] == 1  # nothing of a refused body was applied


# ---------------------------------------------------------------- list gists


def other_client(server: GistServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_list_gists_shows_the_tokens_own_gists_most_recently_updated_first(
    server: GistServer, client: httpx.Client, clock: FakeClock
) -> None:
    first = create(client, "1")
    clock.advance(10)
    second = create(client, "2")
    with other_client(server, "ghp_someone_else") as other:
        theirs = create(other, "x")
        assert [g["id"] for g in other.get("/gists").json()] == [theirs["id"]]
    clock.advance(10)
    patch(client, first["id"], "1b")  # updated last: listed first
    third = create(client, "3")  # same second, written after: before it

    listed = client.get("/gists")
    assert listed.status_code == 200
    assert [g["id"] for g in listed.json()] == [third["id"], first["id"], second["id"]]
    assert "Link" not in listed.headers  # one page


def test_listed_gists_carry_file_names_and_sizes_but_no_content_or_history(client: httpx.Client) -> None:
    response = client.post(
        "/gists",
        json={"description": "cmdgate shard 7", "files": {"manifest.json": {"content": "€uro"}}},
    )
    gist = response.json()
    item = client.get("/gists").json()[0]
    assert item["id"] == gist["id"]
    assert item["description"] == "cmdgate shard 7"
    assert item["updated_at"] == gist["updated_at"] and item["created_at"] == gist["created_at"]
    assert item["files"] == {
        "manifest.json": {
            "filename": "manifest.json",
            "type": "application/json",
            "language": "JSON",
            "raw_url": gist["files"]["manifest.json"]["raw_url"],
            "size": 6,
        }
    }
    assert "history" not in item and "forks" not in item


def test_list_gists_paginates_with_a_link_header_that_keeps_since(
    server: GistServer, client: httpx.Client, clock: FakeClock
) -> None:
    since = "2023-11-14T22:13:20Z"  # the fake clock's start
    ids: list[str] = []
    for n in range(5):
        ids.insert(0, create(client, str(n))["id"])
        clock.advance(1)
    pages = [client.get("/gists", params={"per_page": 2, "page": p, "since": since}) for p in (1, 2, 3)]
    assert [g["id"] for page in pages for g in page.json()] == ids
    first = pages[0].headers["Link"]
    assert f'<{server.url}/gists?per_page=2&page=2&since=2023-11-14T22%3A13%3A20Z>; rel="next"' in first
    assert 'page=3&since=2023-11-14T22%3A13%3A20Z>; rel="last"' in first
    assert 'rel="next"' not in pages[2].headers["Link"]
    assert client.get("/gists", params={"per_page": 2, "page": 4}).json() == []


def test_list_gists_since_keeps_gists_updated_at_or_after_it(client: httpx.Client, clock: FakeClock) -> None:
    old = create(client, "old")
    clock.advance(60)
    updated_at = create(client, "new")["updated_at"]
    clock.advance(60)
    renewed = patch(client, old["id"], "renewed").json()

    assert [g["id"] for g in client.get("/gists", params={"since": updated_at}).json()] == [
        renewed["id"],
        client.get("/gists").json()[1]["id"],
    ]
    assert [g["id"] for g in client.get("/gists", params={"since": renewed["updated_at"]}).json()] == [old["id"]]
    assert client.get("/gists", params={"since": "2099-01-01T00:00:00Z"}).json() == []
    assert len(client.get("/gists", params={"since": "not a time"}).json()) == 2  # ignored, like a bad page


# ------------------------------------------------------------ ETag and limits


def test_304_does_not_decrement_ratelimit_remaining(client: httpx.Client) -> None:
    gist = create(client)
    first = client.get(f"/gists/{gist['id']}")
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    for _ in range(3):
        cached = client.get(f"/gists/{gist['id']}", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.content == b""
        assert remaining(cached) == remaining(first)
    assert remaining(client.get(f"/gists/{gist['id']}")) == remaining(first) - 1

    patch(client, gist["id"], "changed")
    stale = client.get(f"/gists/{gist['id']}", headers={"If-None-Match": etag})
    assert stale.status_code == 200
    assert stale.headers["ETag"] != etag


def test_primary_limit_exhausts_then_resets_with_the_window(
    server: GistServer, client: httpx.Client, clock: FakeClock
) -> None:
    server.app.set_limits(primary_per_hour=3)
    gist = create(client)
    ok = client.get(f"/gists/{gist['id']}")
    assert ok.headers["x-ratelimit-limit"] == "3"
    assert ok.headers["x-ratelimit-used"] == "2"
    reset_at = int(ok.headers["x-ratelimit-reset"])
    assert reset_at == int(clock.now + 3600)
    client.get(f"/gists/{gist['id']}")

    blocked = client.get(f"/gists/{gist['id']}")
    assert blocked.status_code == 403
    assert remaining(blocked) == 0
    assert blocked.json()["message"].startswith("API rate limit exceeded for user")

    clock.now = reset_at
    again = client.get(f"/gists/{gist['id']}")
    assert again.status_code == 200
    assert remaining(again) == 2


def test_secondary_per_minute_budget_with_injected_clock(
    server: GistServer, client: httpx.Client, clock: FakeClock
) -> None:
    server.app.set_limits(secondary_per_minute=3)
    gist = create(client)
    clock.advance(5)
    assert patch(client, gist["id"], "2").status_code == 200
    clock.advance(5)
    assert patch(client, gist["id"], "3").status_code == 200

    blocked = patch(client, gist["id"], "4")
    assert blocked.status_code == 403
    # The oldest write (10 s ago) leaves the one-minute window in 50 s.
    assert blocked.headers["Retry-After"] == "50"
    assert "secondary rate limit" in blocked.json()["message"]
    assert remaining(blocked) > 0

    clock.advance(49)
    assert patch(client, gist["id"], "4").status_code == 403
    clock.advance(1)
    assert patch(client, gist["id"], "4").status_code == 200
    assert len(server.app.write_log()) == 4


def test_secondary_per_hour_budget_and_429_option(server: GistServer, client: httpx.Client, clock: FakeClock) -> None:
    admin = httpx.post(
        f"{server.url}/_admin/limits",
        json={"secondary_per_hour": 2, "secondary_status": 429},
    )
    assert admin.json()["secondary_per_hour"] == 2
    gist = create(client)
    clock.advance(120)
    assert patch(client, gist["id"], "2").status_code == 200
    clock.advance(120)
    blocked = patch(client, gist["id"], "3")
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"] == str(3600 - 240)
    clock.advance(3600 - 240)
    assert patch(client, gist["id"], "3").status_code == 200


def test_write_log_keeps_accepted_writes_with_clock_timestamps(
    server: GistServer, client: httpx.Client, clock: FakeClock
) -> None:
    gist = create(client)
    clock.advance(1.5)
    patch(client, gist["id"], "2")
    client.patch(f"/gists/{gist['id']}", json={"files": 1})
    client.patch(f"/gists/{gist['id']}", json={}, headers={"If-Match": '"x"'})
    clock.advance(1.5)
    patch(client, gist["id"], "3")

    log = httpx.get(f"{server.url}/_admin/stats").json()["write_log"]
    assert [entry["method"] for entry in log] == ["POST", "PATCH", "PATCH"]
    times = [entry["ts"] for entry in log]
    assert [b - a for a, b in itertools.pairwise(times)] == [1.5, 1.5]
    current = client.get(f"/gists/{gist['id']}").json()
    assert log[-1]["version"] == current["history"][0]["version"]
    assert {entry["gist_id"] for entry in log} == {gist["id"]}


def test_conditional_patch_is_refused_and_not_written(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    etag = client.get(f"/gists/{gist['id']}").headers["ETag"]
    refused = client.patch(
        f"/gists/{gist['id']}",
        json={"files": {"state.json": {"content": "x"}}},
        headers={"If-Match": etag},
    )
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("Conditional request headers")
    assert client.get(f"/gists/{gist['id']}").json()["files"]["state.json"]["content"] == "v1"
    assert server.app.stats()["writes"] == 1


# --------------------------------------------------------------------- faults


def test_502_fault_for_count_2_then_ok(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    set_fault = httpx.post(f"{server.url}/_admin/faults", json={"mode": "502", "count": 2})
    assert set_fault.json()["mode"] == "502"
    statuses = [client.get(f"/gists/{gist['id']}").status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    failed = server.app.stats()
    assert failed["faults_injected"] == 2


def test_502_fault_body_is_html(server: GistServer, client: httpx.Client) -> None:
    server.app.set_fault("502", count=1)
    response = client.get("/gists/whatever")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


def test_429_fault_until_cleared_with_retry_after(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    server.app.set_fault("429", count=None, retry_after=7)
    for _ in range(3):
        response = client.get(f"/gists/{gist['id']}")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
    httpx.post(f"{server.url}/_admin/faults", json={"mode": "none"})
    assert client.get(f"/gists/{gist['id']}").status_code == 200


def test_403_fault_is_the_secondary_limit_with_retry_after(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    assert httpx.post(f"{server.url}/_admin/faults", json={"mode": "403", "retry_after": 3}).status_code == 200
    response = client.get(f"/gists/{gist['id']}")
    assert response.status_code == 403
    assert response.headers["Retry-After"] == "3"
    assert "secondary rate limit" in response.json()["message"]
    httpx.post(f"{server.url}/_admin/faults", json={"mode": "none"})
    assert client.get(f"/gists/{gist['id']}").status_code == 200


def test_fault_limited_to_methods(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    server.app.set_fault("502", methods=["PATCH"])
    assert client.get(f"/gists/{gist['id']}").status_code == 200
    assert patch(client, gist["id"], "x").status_code == 502
    assert server.app.stats()["writes"] == 1


def test_timeout_fault_delays_the_answer(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    server.app.set_fault("timeout", count=1, delay_s=2.0)
    with pytest.raises(httpx.ReadTimeout):
        client.get(f"/gists/{gist['id']}", timeout=0.2)
    assert client.get(f"/gists/{gist['id']}").status_code == 200


def test_lost_fault_applies_the_write_then_answers_502(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    admin = httpx.post(f"{server.url}/_admin/faults", json={"mode": "lost", "count": 2, "methods": ["PATCH", "POST"]})
    assert admin.status_code == 200 and admin.json()["mode"] == "lost"

    spoiled = patch(client, gist["id"], "landed")
    assert spoiled.status_code == 502
    assert "502 Bad Gateway" in spoiled.text
    assert client.get(f"/gists/{gist['id']}").status_code == 200  # GET is not in `methods`
    current = client.get(f"/gists/{gist['id']}").json()
    assert current["files"]["state.json"]["content"] == "landed"
    assert len(current["history"]) == 2  # the revision exists though its answer was lost

    lost_create = client.post("/gists", json={"description": "shard 9", "files": {"m.json": {"content": "m"}}})
    assert lost_create.status_code == 502
    assert [g["description"] for g in client.get("/gists").json()] == ["shard 9", None]  # found by a scan

    stats = server.app.stats()
    assert stats["faults_injected"] == 2
    assert stats["writes"] == 3
    assert patch(client, gist["id"], "after").status_code == 200  # count ran out


def test_lost_timeout_fault_applies_the_write_then_stalls_the_answer(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    server.app.set_fault("lost_timeout", count=1, delay_s=5.0, methods=["PATCH"])
    with pytest.raises(httpx.ReadTimeout):
        client.patch(f"/gists/{gist['id']}", json={"files": {"state.json": {"content": "landed"}}}, timeout=0.3)
    current = client.get(f"/gists/{gist['id']}").json()
    assert current["files"]["state.json"]["content"] == "landed"
    assert [entry["method"] for entry in server.app.write_log()] == ["POST", "PATCH"]
    assert server.app.stats()["faults_injected"] == 1
    assert patch(client, gist["id"], "next").status_code == 200


def test_stop_does_not_wait_for_a_sleeping_timeout_fault(clock: FakeClock) -> None:
    gist_server = GistServer(port=0, clock=clock).start()
    gist_server.app.set_fault("timeout", delay_s=600.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            f"{gist_server.url}/gists/x",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=0.2,
        )
    started = time.monotonic()
    gist_server.stop()
    assert time.monotonic() - started < 5


# --------------------------------------------------------------- truncation


def test_file_over_1_mib_is_truncated_and_raw_url_has_every_byte(
    client: httpx.Client,
) -> None:
    # Three-byte characters, so the 1 MiB cut falls inside one of them.
    content = "€" * (MIB // 3 + 100)
    size = len(content.encode("utf-8"))
    gist = create(client, content)
    entry = client.get(f"/gists/{gist['id']}").json()["files"]["state.json"]
    assert entry["truncated"] is True
    assert entry["size"] == size
    shown = entry["content"].encode("utf-8")
    assert len(shown) <= MIB
    assert content.encode("utf-8").startswith(shown)

    raw = httpx.get(entry["raw_url"])
    assert raw.status_code == 200
    assert raw.headers["Content-Type"].startswith("text/plain")
    assert raw.content == content.encode("utf-8")


def test_file_of_exactly_1_mib_is_not_truncated(client: httpx.Client) -> None:
    gist = create(client, "x" * MIB)
    entry = gist["files"]["state.json"]
    assert entry["truncated"] is False
    assert len(entry["content"]) == MIB


def test_raw_url_of_an_old_revision_keeps_its_content(client: httpx.Client) -> None:
    gist = create(client, "old")
    old_raw = gist["files"]["state.json"]["raw_url"]
    patch(client, gist["id"], "new")
    assert httpx.get(old_raw).text == "old"


# ---------------------------------------------------------------- auth, admin


def test_configured_tokens_refuse_others(clock: FakeClock) -> None:
    app = GistApp(clock=clock, valid_tokens={"good"})
    with GistServer(port=0, app=app) as gist_server:
        good = {"Authorization": "token good"}
        bad = {"Authorization": "Bearer other"}
        body = {"files": {"a.txt": {"content": "a"}}}
        assert httpx.post(f"{gist_server.url}/gists", json=body, headers=good).status_code == 201
        refused = httpx.post(f"{gist_server.url}/gists", json=body, headers=bad)
        assert refused.status_code == 401
        assert refused.json()["message"] == "Bad credentials"
        missing = httpx.post(f"{gist_server.url}/gists", json=body)
        assert missing.json()["message"] == "Requires authentication"


def test_admin_stats_and_reset(server: GistServer, client: httpx.Client) -> None:
    gist = create(client)
    etag = client.get(f"/gists/{gist['id']}").headers["ETag"]
    client.get(f"/gists/{gist['id']}", headers={"If-None-Match": etag})
    httpx.get(f"{server.url}/gists/{gist['id']}")

    stats = httpx.get(f"{server.url}/_admin/stats").json()
    assert stats["requests_by_method"] == {"POST": 1, "GET": 3}
    assert stats["writes"] == 1
    assert stats["not_modified"] == 1
    assert stats["rejected"] == {"auth": 1}
    assert stats["gists"] == 1

    assert httpx.post(f"{server.url}/_admin/reset").json() == {"reset": True}
    assert client.get(f"/gists/{gist['id']}").status_code == 404
    after = server.app.stats()
    assert after["writes"] == 0
    assert after["write_log"] == []


def test_admin_rejects_bad_input(server: GistServer) -> None:
    assert httpx.post(f"{server.url}/_admin/faults", json={"mode": "x"}).status_code == 400
    for mode in ("lost", "lost_timeout"):
        accepted = httpx.post(f"{server.url}/_admin/faults", json={"mode": mode, "count": 1, "delay_s": 2})
        assert accepted.json() == {
            "mode": mode,
            "count": 1,
            "retry_after": 60,
            "delay_s": 2.0,
            "methods": None,
            "path_prefix": None,
        }
    assert httpx.post(f"{server.url}/_admin/limits", json={"secondary_status": 500}).status_code == 400
    assert httpx.post(f"{server.url}/_admin/limits", json={"nope": 1}).status_code == 400


def test_module_entry_point_serves(tmp_path: Path) -> None:
    local_dir = Path(__file__).resolve().parents[3] / "local"
    env = {**os.environ, "PYTHONPATH": str(local_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cmdgate_local.gist_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("gist server ready on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        response = httpx.post(
            f"{url}/gists",
            json={"files": {"a.txt": {"content": "a"}}},
            headers={"Authorization": "Bearer t"},
        )
        assert response.status_code == 201
    finally:
        process.terminate()
        process.wait(timeout=10)
