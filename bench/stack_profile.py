"""Where the local stack's memory and moto lock time go while many new state keys are written.

    make bench-profile ARGS="--keys 300"                 # RSS per key, lock time per AWS action
    PYTHONTRACEMALLOC=6 make bench-profile ARGS="..."    # also the top allocation sites (slower)

Starts the stack as the state benchmark does (bench/state_sync.py: pool of 6, 5 s sync visibility),
PUTs `--keys` new keys across `--namespaces` namespaces with 8 clients, waits up to `--settle` s
for the dirty index to empty (polled through the moto endpoint's lock-time record, no table scan),
and prints the stack process's RSS before and after, the AWS actions by time held in moto's lock,
and (while tracemalloc traces in the stack) the top allocation sites.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx

from bench.run import ADMIN_KEY
from cmdgate_local.launcher import launch
from cmdgate_local.moto_endpoint import LOCK_TIME_PATH, MEMORY_PATH
from cmdgate_local.stack import LOCAL_CREDENTIALS
from cmdgate_local.template import REGION

CREATE = {"If-None-Match": "*"}
MIB = 1024 * 1024


def rss_of(pid: int) -> int:
    """A process's resident set size in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def dirty_count(dynamodb: Any, table: str) -> int:
    """Keys in the dirty index (a query of the sparse index per namespace would need the names: count all)."""
    total, kwargs = 0, {"TableName": table, "IndexName": "DirtyIndex", "Select": "COUNT"}
    while True:
        page = dynamodb.scan(**kwargs)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv: list[str] | None = None) -> int:
    """Run the profile and print its figures as JSON."""
    parser = argparse.ArgumentParser(prog="bench.stack_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to wait for every key to sync")
    parser.add_argument("--top", type=int, default=12, help="lock-time actions to print")
    parser.add_argument("--pool-size", type=int, default=6, help="environments per function (the benchmark's 6)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    params = ("StateSyncVisibilityTimeoutS=5", *args.param)
    with (
        tempfile.TemporaryDirectory(prefix="cmdgate-bench-profile-") as tmp,
        launch(Path(tmp), admin_key=ADMIN_KEY, pool_size=args.pool_size, params=params) as running,
    ):
        pid, moto_url = int(running.state["pid"]), running.state["moto_url"]
        table = running.state["functions"]["ApiFunction"]["STATE_TABLE"]
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        client = httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
        prefix = f"pf{uuid.uuid4().hex[:6]}n"
        names = [f"{prefix}{i % args.namespaces}.k{i}" for i in range(args.keys)]
        rss_start = rss_of(pid)
        statuses: dict[int, int] = {}
        failures: list[str] = []

        def put(name: str) -> None:
            response = client.put(f"/v1/state/{name}", json={"n": 1}, headers=CREATE)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500 and len(failures) < 3:
                failures.append(response.text[:300])

        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, names))
        write_s = time.monotonic() - began
        rss_written = rss_of(pid)
        deadline = time.monotonic() + args.settle
        dirty = dirty_count(dynamodb, table)
        while dirty and time.monotonic() < deadline:
            time.sleep(2)
            dirty = dirty_count(dynamodb, table)
        settle_s = time.monotonic() - began - write_s
        rss_end = rss_of(pid)
        locks = httpx.get(moto_url + LOCK_TIME_PATH, timeout=60).json()
        memory = httpx.get(moto_url + MEMORY_PATH, timeout=600).json()
    figures = {
        "keys": args.keys,
        "puts": statuses,
        "failures": failures,
        "write_s": round(write_s, 1),
        "settle_s": round(settle_s, 1),
        "dirty_left": dirty,
        "rss_mib": {
            "start": round(rss_start / MIB, 1),
            "after_writes": round(rss_written / MIB, 1),
            "end": round(rss_end / MIB, 1),
            "per_1000_keys": round((rss_end - rss_start) / MIB * 1000 / args.keys, 1),
        },
        "lock_held_s": locks["held_s"],
        "lock_calls": locks["calls"],
        "lock_top": locks["actions"][: args.top],
        "traced_mib": round(memory.get("traced_bytes", 0) / MIB, 1) if memory.get("tracing") else None,
        "alloc_top": memory.get("top", [])[:15],
    }
    json.dump(figures, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
