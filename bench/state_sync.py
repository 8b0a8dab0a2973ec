"""Benchmark of versioned state with write-behind gist sync; prints figures (and writes docs/benchmarks.md if asked).

    make bench-state                                   # print the figures
    make bench-state ARGS="--seconds 30 --write-docs"  # and replace this benchmark's section of docs/benchmarks.md

- sustained PATCH rate on one key through the API for `--seconds` (default 60), against the
  default gist budget of 1 write/s (80/min, 500/h); the loopback Gist API's write log proves the
  budget was never exceeded;
- time from the last write of a burst to its gist sync (p50/p95 over `--bursts` bursts);
- gist API calls per state write, and DynamoDB calls per PATCH (botocore hooks in the api function).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import ADMIN_KEY, add_write_docs, percentiles, report
from cmdgate_local.launcher import launch

SECTION = "## State: write-behind gist sync"
MERGE = {"Content-Type": "application/merge-patch+json"}


def gist_stats(gist_url: str) -> dict[str, Any]:
    """The loopback Gist API's counters and write log."""
    stats: dict[str, Any] = httpx.get(f"{gist_url}/_admin/stats").json()
    return stats


def max_in_window(timestamps: list[float], window_s: float) -> int:
    """The most writes inside any window of `window_s` seconds."""
    ordered, best, start = sorted(timestamps), 0, 0
    for end, ts in enumerate(ordered):
        while ts - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def sustained(client: httpx.Client, seconds: float, clients: int) -> dict[str, Any]:
    """PATCH one key from `clients` threads for `seconds`; returns writes and their rate."""
    key = f"bench.sustained.{uuid.uuid4().hex[:8]}"
    client.put(f"/v1/state/{key}", json={"n": 0}, headers={"If-None-Match": "*"}).raise_for_status()
    deadline = time.monotonic() + seconds
    counter = itertools.count(1)
    latencies: list[float] = []

    def worker(_: int) -> int:
        done = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.patch(f"/v1/state/{key}", json={"n": next(counter)}, headers=MERGE)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 200:
                done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        writes = sum(pool.map(worker, range(clients)))
    elapsed = time.monotonic() - started
    return {
        "key": key,
        "writes": writes,
        "seconds": round(elapsed, 1),
        "rate": round(writes / elapsed, 1),
        **percentiles(latencies),
    }


def burst_to_sync(client: httpx.Client, bursts: int, size: int) -> list[float]:
    """Seconds from the last write of each burst until the gist holds it."""
    delays = []
    for _ in range(bursts):
        key = f"bench.burst.{uuid.uuid4().hex[:8]}"
        client.put(f"/v1/state/{key}", json={"n": 0}, headers={"If-None-Match": "*"}).raise_for_status()
        version = 1
        for n in range(1, size):
            version = int(client.patch(f"/v1/state/{key}", json={"n": n}, headers=MERGE).headers["state-version"])
        written = time.monotonic()
        while int(client.get(f"/v1/state/{key}").headers["gist-synced-version"]) < version:
            if time.monotonic() - written > 120:
                raise RuntimeError(f"{key} did not sync within 120 s")
            time.sleep(0.05)
        delays.append(time.monotonic() - written)
    return delays


def patch_dynamodb_calls(log_dir: Path) -> dict[int, int]:
    """How many PATCH requests made how many DynamoDB calls."""
    counts: Counter[int] = Counter()
    for log in log_dir.glob("ApiFunction-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"aws calls"' in line:
                record = json.loads(line)
                if record.get("resource") == "PATCH /v1/state/{key}":
                    counts[int(record["dynamodb_calls"])] += 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print (or write) the results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--burst-size", type=int, default=10)
    add_write_docs(parser)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="cmdgate-bench-state-") as tmp,
        launch(Path(tmp), admin_key=ADMIN_KEY, pool_size=6, params=("StateSyncVisibilityTimeoutS=5",)) as stack,
    ):
        client = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
        gist_url = stack.state["gist_url"]
        before = gist_stats(gist_url)
        run = sustained(client, args.seconds, args.clients)
        # Let the sync catch up with the sustained key before measuring bursts.
        deadline = time.monotonic() + 120
        while int(client.get(f"/v1/state/{run['key']}").headers["gist-synced-version"]) < run["writes"] + 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        after_sustained = gist_stats(gist_url)
        delays = burst_to_sync(client, args.bursts, args.burst_size)
        after = gist_stats(gist_url)
        calls = patch_dynamodb_calls(stack.log_dir)
    writes_log = [entry["ts"] for entry in after["write_log"]]
    gist_requests = after_sustained["requests_total"] - before["requests_total"]
    gist_writes = after_sustained["writes"] - before["writes"]
    cuts = statistics.quantiles(delays, n=20, method="inclusive") if len(delays) > 1 else delays * 19
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} by `make bench-state` (bench/state_sync.py) on this",
        "machine (2 cores), moto and the loopback Gist API on loopback, default budget 1 gist write/s.",
        "",
        f"- sustained PATCH on one key, {args.clients} clients, {run['seconds']} s: {run['writes']} writes,"
        f" **{run['rate']} writes/s** = **{round(run['rate'] / 1.0, 1)}x** the gist budget of 1 write/s"
        f" (PATCH latency p50 {run['p50']} ms, p95 {run['p95']} ms, p99 {run['p99']} ms);",
        f"- gist writes for those {run['writes']} state writes: {gist_writes} ({gist_requests} gist API calls),"
        f" i.e. {round(gist_requests / max(run['writes'], 1), 3)} gist calls per state write (coalescing);",
        f"- budget never exceeded: at most {max_in_window(writes_log, 1.0)} gist write in any 1 s,"
        f" {max_in_window(writes_log, 60.0)} in any 60 s (limits 1, 80);",
        f"- last write of a burst of {args.burst_size} -> gist synced, over {args.bursts} bursts:"
        f" p50 {statistics.median(delays):.2f} s, p95 {cuts[18]:.2f} s, max {max(delays):.2f} s;",
        f"- DynamoDB calls per PATCH (distribution): {calls}",
        "",
    ]
    report("\n".join(lines), SECTION, write_docs=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
