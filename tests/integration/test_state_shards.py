"""Shard gists at scale against the local stack: many keys in few gist writes, and a Gist outage mid-burst.

These tests run on a stack of their own whose gists linger 20 s (StateGistLingerS), as a deployment
would, so a burst of writes reaches GitHub in one write per shard instead of one per state write.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from cmdgate.crypto import codec_for
from cmdgate.state import layout
from tests.integration.conftest import Stack, running_stack, wait_for

pytestmark = pytest.mark.integration
LINGER_S = 20
GITHUB = {"Authorization": "Bearer test"}


@pytest.fixture(scope="module")
def shard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("shards"), (f"StateGistLingerS={LINGER_S}",)) as running:
        yield running


def gist_api(stack: Stack, path: str) -> Any:
    answer = httpx.get(f"{stack.state['gist_url']}{path}", headers=GITHUB)
    answer.raise_for_status()
    return answer.json()


def gist_admin(stack: Stack, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{stack.state['gist_url']}/_admin/{path}"
    answer = httpx.post(url, json=body) if body is not None else httpx.get(url)
    answer.raise_for_status()
    return answer.json() if answer.content else None


def registers(stack: Stack, keys: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    dynamodb = stack.aws("dynamodb")
    table = stack.resource("StateTable")
    for start in range(0, len(keys), 100):
        request = {
            table: {"Keys": [{"pk": {"S": f"key#{k}"}, "sk": {"S": "register"}} for k in keys[start : start + 100]]}
        }
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"][table]:
                found[item["pk"]["S"].removeprefix("key#")] = item
            request = answer.get("UnprocessedKeys") or {}
    return found


def all_synced(stack: Stack, keys: list[str]) -> dict[str, dict[str, Any]] | None:
    found = registers(stack, keys)
    done = len(found) == len(keys) and all(
        int(item.get("synced_version", {"N": "0"})["N"]) == int(item["version"]["N"]) for item in found.values()
    )
    return found if done else None


def put_all(stack: Stack, values: dict[str, Any], clients: int = 4) -> None:
    def put(key: str) -> int:
        return stack.admin.put(f"/v1/state/{key}", json=values[key], headers={"If-None-Match": "*"}).status_code

    with ThreadPoolExecutor(max_workers=clients) as pool:
        statuses = list(pool.map(put, values))
    assert statuses == [201] * len(values)


def check_files(stack: Stack, found: dict[str, dict[str, Any]], values: dict[str, Any]) -> set[str]:
    """Each key's file is in the gist its register names and opens to its value; returns the gists."""
    codec = codec_for("kms", stack.aws("kms"), stack.resource("StateKey"))
    gists: dict[str, Any] = {}
    for key, item in found.items():
        gist_id, name = item["gist_id"]["S"], item["gist_file"]["S"]
        assert key not in name  # encrypted gists name no key
        gist = gists.setdefault(gist_id, gist_api(stack, f"/gists/{gist_id}"))
        opened = layout.decode(codec, key, gist["files"][name]["content"])
        assert (opened.version, opened.value) == (int(item["version"]["N"]), values[key])
    for gist in gists.values():
        manifest = json.loads(gist["files"][layout.MANIFEST_FILE]["content"])
        assert manifest["format"] == layout.FORMAT and manifest["stack"] in gist["description"]
    return set(gists)


def test_300_keys_in_3_namespaces_reach_their_gists_in_at_most_12_writes(shard_stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    values = {f"{ns}{run}.k{n:03d}": {"n": n, "ns": ns} for ns in ("alpha", "beta", "gamma") for n in range(100)}
    writes_before = len(gist_admin(shard_stack, "stats")["write_log"])
    put_all(shard_stack, values)
    found = wait_for(lambda: all_synced(shard_stack, list(values)), timeout_s=LINGER_S + 90, interval_s=1)
    gists = check_files(shard_stack, found, values)
    assert len(gists) == 6  # 100 keys a namespace, 50 a gist
    assert {item["shard"]["S"] for item in found.values()} == {
        f"{ns}{run}/{n}" for ns in ("alpha", "beta", "gamma") for n in (0, 1)
    }
    writes = gist_admin(shard_stack, "stats")["write_log"][writes_before:]
    print(f"300 keys: {len(writes)} gist writes ({sum(w['method'] == 'POST' for w in writes)} creates)")
    assert len(writes) <= 12
    assert {w["gist_id"] for w in writes} == gists


def versions_written(stack: Stack, gist_id: str) -> list[tuple[str, int]]:
    """(file, version) for every file a revision changed, oldest revision first."""
    commits = gist_api(stack, f"/gists/{gist_id}/commits?per_page=100")
    written: list[tuple[str, int]] = []
    previous: dict[str, str] = {}
    for commit in reversed(commits):
        files = gist_api(stack, f"/gists/{gist_id}/{commit['version']}")["files"]
        for name, file in files.items():
            if name != layout.MANIFEST_FILE and previous.get(name) != file["content"]:
                written.append((name, layout.version_in(file["content"])))
        previous = {name: file["content"] for name, file in files.items()}
    return written


def test_a_gist_outage_mid_burst_loses_nothing_and_writes_no_version_twice(shard_stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    first = {f"burst{run}.k{n:02d}": {"n": n} for n in range(40)}
    put_all(shard_stack, first)
    wait_for(lambda: all_synced(shard_stack, list(first)), timeout_s=LINGER_S + 60, interval_s=1)
    # The gist API fails mid-burst: answers lost after the write landed (a PATCH of shard 0 and
    # the POST creating shard 1), then plain 502s.
    injected_before = gist_admin(shard_stack, "stats")["faults_injected"]
    gist_admin(shard_stack, "faults", {"mode": "lost", "count": 2, "methods": ["PATCH", "POST"]})
    second = {key: {"n": value["n"], "round": 2} for key, value in first.items()}
    second |= {f"burst{run}.new{n:02d}": {"new": n} for n in range(30)}

    def patch(key: str) -> int:
        if key in first:
            return shard_stack.admin.patch(
                f"/v1/state/{key}", json={"round": 2}, headers={"Content-Type": "application/merge-patch+json"}
            ).status_code
        return shard_stack.admin.put(f"/v1/state/{key}", json=second[key], headers={"If-None-Match": "*"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(patch, second))
    assert set(statuses) <= {200, 201}  # every write succeeds while the gist API fails

    def both_lost() -> bool:
        return bool(gist_admin(shard_stack, "stats")["faults_injected"] >= injected_before + 2)

    wait_for(both_lost, timeout_s=LINGER_S + 60, interval_s=1)
    gist_admin(shard_stack, "faults", {"mode": "502", "count": 3})
    found = wait_for(lambda: all_synced(shard_stack, list(second)), timeout_s=LINGER_S + 120, interval_s=1)
    gist_admin(shard_stack, "faults", {"mode": "none"})
    gists = check_files(shard_stack, found, second)
    for gist_id in gists:
        written = versions_written(shard_stack, gist_id)
        assert len(written) == len(set(written)), f"a version was written twice to {gist_id}"
