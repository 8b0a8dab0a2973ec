"""What the loopback Gist API saw: its admin counters and write log, and the files each write changed.

The write log (`GET /_admin/stats`) holds every accepted POST/PATCH as {ts, method, gist_id,
version}; the files a write changed come from the normal API, reading the revision and the one
before it (`GET /gists/{id}` for the history, `GET /gists/{id}/{sha}` per revision), with a token of
the benchmark's own so the sync's rate-limit budget is not spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from bench.state_figures import FileSnapshot, changed_files

READER_TOKEN = "cmdgate-bench-reader"  # noqa: S105 - the loopback server takes any token, with a budget per token
API_HEADERS = {
    "Authorization": f"Bearer {READER_TOKEN}",
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
}


def gist_stats(gist_url: str) -> dict[str, Any]:
    """The loopback Gist API's counters and write log."""
    stats: dict[str, Any] = httpx.get(f"{gist_url}/_admin/stats").json()
    return stats


@dataclass(frozen=True)
class Write:
    """One accepted gist write and the files it changed (None: its gist is gone or the revision not found)."""

    ts: float
    method: str
    gist_id: str
    sha: str
    files: int | None = None


def writes_between(before: dict[str, Any], after: dict[str, Any]) -> list[Write]:
    """The write log entries `after` has beyond `before` (both /_admin/stats answers)."""
    return [
        Write(float(e["ts"]), str(e["method"]), str(e["gist_id"]), str(e["version"]))
        for e in after["write_log"][len(before["write_log"]) :]
    ]


def _files(answer: dict[str, Any]) -> dict[str, FileSnapshot]:
    return {
        name: FileSnapshot(int(f.get("size", 0)), f.get("content")) for name, f in (answer.get("files") or {}).items()
    }


def _gist_changes(client: httpx.Client, gist_id: str, writes: list[Write]) -> list[Write]:
    """`writes` (all of one gist) with the files each changed against the revision before it."""
    latest = client.get(f"/gists/{gist_id}")
    if latest.status_code != 200:
        return writes
    history = [str(item["version"]) for item in reversed(latest.json()["history"])]  # oldest first
    cache: dict[str, dict[str, FileSnapshot]] = {}

    def files(sha: str) -> dict[str, FileSnapshot]:
        if sha not in cache:
            cache[sha] = _files(client.get(f"/gists/{gist_id}/{sha}").raise_for_status().json())
        return cache[sha]

    out = []
    for write in writes:
        if write.sha not in history:
            out.append(write)
            continue
        position = history.index(write.sha)
        previous = files(history[position - 1]) if position > 0 else {}
        out.append(Write(write.ts, write.method, write.gist_id, write.sha, changed_files(previous, files(write.sha))))
    return out


def with_files_changed(gist_url: str, writes: list[Write]) -> list[Write]:
    """`writes` with the number of files each changed against its gist's previous revision (same order)."""
    by_gist: dict[str, list[int]] = {}
    for index, write in enumerate(writes):
        by_gist.setdefault(write.gist_id, []).append(index)
    out: dict[int, Write] = {}
    with httpx.Client(base_url=gist_url, headers=API_HEADERS, timeout=30) as client:
        for gist_id, indexes in by_gist.items():
            out.update(zip(indexes, _gist_changes(client, gist_id, [writes[i] for i in indexes]), strict=True))
    return [out[i] for i in range(len(writes))]


def keys_per_write(writes: list[Write], method: str | None = None) -> float | None:
    """Mean files changed per write (of `method` only, when given): keys carried, a file per key."""
    counted = [w.files for w in writes if w.files is not None and (method is None or w.method == method)]
    return sum(counted) / len(counted) if counted else None
