"""Benchmark of versioned state with write-behind gist sync; prints figures (and writes docs/benchmarks.md if asked).

    make bench-state                          # every scenario (about 15 minutes)
    make bench-state ARGS="--quick"           # every scenario, shorter phases (about 3 minutes)
    make bench-state ARGS="--only hot"        # one scenario alone: hot, many or mix (repeat --only for more)
    make bench-state ARGS="--plots /tmp/p"    # also draw the PNGs into /tmp/p
    make bench-state ARGS="--write-docs"      # and replace this benchmark's section of docs/benchmarks.md
                                              # (plus its PNGs in docs/img/ and docs/benchmarks-state-sync.csv)

`make bench-state` installs requirements/bench.txt (matplotlib) into the dev venv once (a stamp
file); without matplotlib the figures are still printed, and asking for plots stops at once.

The machine (2 cores) running the whole local stack is the ceiling, so state figures are ratios
to the same run's echo throughput with the same number of clients. Scenarios (`--only`):

- hot: echo through the API front, `--clients` clients for `--seconds` (the same run's ceiling);
  then `--clients` clients PATCH one key for `--seconds`: writes/s against echo req/s (goal
  >= 0.8) and against the gist budget of 1 write/s; PATCH p50/p95/p99 (and a histogram); 409
  STATE_CONTENTION answers (retried by the client after Retry-After, counted apart from writes);
  DynamoDB calls per PATCH and lost races retried per write (botocore hooks in the api function);
  gist writes for those state writes (coalescing); time from the last write of a burst to its
  gist sync (over `--bursts` bursts of `--burst-size` writes);
- many: `--keys` new keys (default 1,000) in `--namespaces` namespaces (default 10) written once,
  then the registers polled every `--sample-interval` s until every key's synced version equals
  its version or `--sync-bound` s pass: time from the last write until all are synced (goal
  <= 60 s), keys synced and gist writes over time, gists created, gist writes by method, most
  gist writes in any 1 s and 60 s (limits 1 and 80), keys carried per gist write;
- mix: `--mix-clients` clients (8) PATCH random keys out of `--mix-keys` (1,000; the many-keys
  phase's keys when it ran, else seeded first) for `--mix-seconds` (180; 0 skips), then up to
  `--mix-drain` s for the last writes to sync. The registers are sampled every
  `--sample-interval` s: a write's lag is from its 2xx until a sample shows its version synced;
  dirty gists are the distinct gists holding a key whose synced version is behind (a register's
  `shard` attribute names its gist; without one, a namespace counts ceil(dirty keys /
  `--keys-per-gist`)). Lag p50/p95/max against the goal p95 <= dirty gists x 1 s + 5 s, and the
  hourly steady state the 500/h limit allows: 500 x keys carried per gist PATCH.

Keys carried per gist write are the files each logged write changed against its gist's previous
revision, read back through the loopback Gist API (a file per key).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx

from bench import state_plots
from bench.gist_log import Write, gist_stats, keys_per_write, with_files_changed, writes_between
from bench.report import Figure, Tick, silent
from bench.run import ADMIN_KEY, RESULTS, add_write_docs, percentiles, report
from bench.state_figures import (
    GIST_WRITES_PER_HOUR,
    KEYS_PER_GIST,
    LagTracker,
    Register,
    dirty_gists,
    hourly_steady_state,
    lag_goal_s,
    lag_percentiles,
    max_in_window,
    mean,
    within_goal,
)
from cmdgate_local.launcher import RunningStack, launch
from cmdgate_local.stack import LOCAL_CREDENTIALS
from cmdgate_local.template import REGION

SECTION = "## State: write-behind gist sync"
BENCHMARK = "state"
# The stack the scenarios expect: the sync queue's visibility short enough that a deferred key is
# retried within the phases, and 6 environments per function.
PARAMS = ("StateSyncVisibilityTimeoutS=5",)
POOL_SIZE = 6
SERIES = RESULTS.parent / "benchmarks-state-sync.csv"
IMAGES = RESULTS.parent / "img"
MERGE = {"Content-Type": "application/merge-patch+json"}
CREATE = {"If-None-Match": "*"}
GIST_BUDGET_PER_S = 1.0
CONTENTION = "STATE_CONTENTION"
SCENARIOS = ("hot", "many", "mix")
MANY_GOAL_S = 60.0

__all__ = ["gist_stats", "main", "max_in_window"]


@dataclass
class Tally:
    """Answers of a load phase, shared by its threads."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, started: float, status: str) -> None:
        with self.lock:
            self.latencies.append((time.perf_counter() - started) * 1000)
            self.statuses[status] += 1


def status_of(response: httpx.Response) -> str:
    """The status code, with the problem code for a 409 (STATE_CONTENTION is counted apart)."""
    if response.status_code == 409:
        try:
            return f"409 {response.json().get('code', '?')}"
        except ValueError:
            return "409 ?"
    return str(response.status_code)


def load(seconds: float, clients: int, call: Callable[[], httpx.Response]) -> tuple[Tally, float]:
    """Run `call` from `clients` threads for `seconds`; a 409 is retried after its Retry-After."""
    deadline = time.monotonic() + seconds
    tally = Tally()

    def worker(_: int) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = call()
            tally.add(started, status_of(response))
            if response.status_code == 409:
                time.sleep(float(response.headers.get("retry-after", "1")))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(worker, range(clients)))
    return tally, time.monotonic() - started


def echo(client: httpx.Client, seconds: float, clients: int) -> dict[str, Any]:
    """Sync idempotent echo through the API front: the same run's ceiling with `clients` clients."""

    def call() -> httpx.Response:
        key = uuid.uuid4().hex
        return client.post("/v1/commands/echo", json={"message": "bench"}, headers={"Idempotency-Key": key})

    for _ in range(clients):
        call().raise_for_status()  # warm
    tally, elapsed = load(seconds, clients, call)
    ok = tally.statuses["200"]
    return {"ok": ok, "seconds": round(elapsed, 1), "rps": round(ok / elapsed, 2), "statuses": dict(tally.statuses)}


def hot_key(client: httpx.Client, seconds: float, clients: int) -> dict[str, Any]:
    """PATCH one key from `clients` threads for `seconds`; returns writes, their rate and the 409s."""
    key = f"bench.hot.{uuid.uuid4().hex[:8]}"
    client.put(f"/v1/state/{key}", json={"n": 0}, headers=CREATE).raise_for_status()
    counter = itertools.count(1)

    def call() -> httpx.Response:
        return client.patch(f"/v1/state/{key}", json={"n": next(counter)}, headers=MERGE)

    tally, elapsed = load(seconds, clients, call)
    writes = tally.statuses["200"]
    return {
        "key": key,
        "writes": writes,
        "contention": tally.statuses[f"409 {CONTENTION}"],
        "statuses": dict(tally.statuses),
        "seconds": round(elapsed, 1),
        "rate": round(writes / elapsed, 2),
        **percentiles(tally.latencies),
        "latencies": tally.latencies,
    }


SERVER_ERRORS: Counter[int] = Counter()  # 5xx answers to the bench's own reads, reported with the figures


def synced(client: httpx.Client, key: str) -> tuple[int, int]:
    """(State-Version, Gist-Synced-Version) of one key, as the API answers them (a 5xx is counted and retried)."""
    for attempt in range(4):
        response = client.get(f"/v1/state/{key}")
        if response.status_code < 500 or attempt == 3:
            break
        SERVER_ERRORS[response.status_code] += 1
        time.sleep(0.5)
    headers = response.raise_for_status().headers
    return int(headers["state-version"]), int(headers["gist-synced-version"])


def wait_synced(client: httpx.Client, key: str, bound_s: float) -> float | None:
    """Seconds until the key's gist holds its version (None: not within `bound_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        version, synced_version = synced(client, key)
        if synced_version >= version:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def burst_to_sync(client: httpx.Client, bursts: int, size: int) -> list[float]:
    """Seconds from the last write of each burst until the gist holds it."""
    delays = []
    for _ in range(bursts):
        key = f"bench.burst.{uuid.uuid4().hex[:8]}"
        client.put(f"/v1/state/{key}", json={"n": 0}, headers=CREATE).raise_for_status()
        for n in range(1, size):
            client.patch(f"/v1/state/{key}", json={"n": n}, headers=MERGE).raise_for_status()
        delay = wait_synced(client, key, 120)
        if delay is None:
            raise RuntimeError(f"{key} did not sync within 120 s")
        delays.append(delay)
    return delays


def registers(dynamodb: Any, table: str, prefix: str) -> dict[str, Register]:
    """Every register whose key starts with `prefix`: version, synced version, gist id, shard.

    The same item the API's State-Version and Gist-Synced-Version headers are read from; a scan
    instead of a GET per key keeps the poll from loading the stack it measures.
    """
    found: dict[str, Register] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(#pk, :p) AND #sk = :r",
        "ExpressionAttributeNames": {
            "#pk": "pk",
            "#sk": "sk",
            "#v": "version",
            "#sv": "synced_version",
            "#g": "gist_id",
            "#sh": "shard",
        },
        "ExpressionAttributeValues": {":p": {"S": f"key#{prefix}"}, ":r": {"S": "register"}},
        "ProjectionExpression": "#pk, #v, #sv, #g, #sh",
    }
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page["Items"]:
            found[item["pk"]["S"].removeprefix("key#")] = Register(
                version=int(item["version"]["N"]),
                synced_version=int(item.get("synced_version", {}).get("N", "0")),
                gist_id=item.get("gist_id", {}).get("S"),
                shard=item.get("shard", {}).get("S"),
            )
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass
class Stack:
    """What the scenarios need of the running stack."""

    client: httpx.Client
    dynamodb: Any
    table: str
    gist_url: str

    def registers(self, prefix: str) -> dict[str, Register]:
        return registers(self.dynamodb, self.table, prefix)


def write_figures(writes: list[Write]) -> dict[str, Any]:
    """Gist writes of a phase: by method, the most in 1 s and 60 s, their rate, keys carried per write."""
    times = [w.ts for w in writes]
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    carried = [w.files for w in writes if w.files is not None]
    return {
        "gist_writes": len(writes),
        "by_method": dict(Counter(w.method for w in writes)),
        "max_1s": max_in_window(times, 1.0),
        "max_60s": max_in_window(times, 60.0),
        "rate_per_min": round((len(times) - 1) / span * 60, 1) if span > 0 else 0.0,
        "keys_per_write": _round(keys_per_write(writes)),
        "keys_per_patch": _round(keys_per_write(writes, "PATCH")),
        "keys_per_post": _round(keys_per_write(writes, "POST")),
        "keys_carried": sum(carried),
        "writes_unread": len(writes) - len(carried),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def many_keys(stack: Stack, keys: int, namespaces: int, bound_s: float, interval_s: float) -> dict[str, Any]:
    """Write `keys` new keys once across `namespaces` namespaces, then poll until all are synced or `bound_s` passes."""
    prefix = f"bm{uuid.uuid4().hex[:6]}n"
    names = [f"{prefix}{i % namespaces}.k{i}" for i in range(keys)]
    client = stack.client
    before = gist_stats(stack.gist_url)
    first_write = time.time()
    tally = Tally()

    def put(name: str) -> None:
        started = time.perf_counter()
        response = client.put(f"/v1/state/{name}", json={"n": 1}, headers=CREATE)
        tally.add(started, status_of(response))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, names))
    last_write = time.time()
    series: list[tuple[float, int]] = []  # (s since the first write, keys synced)
    all_synced_at: float | None = None
    while True:
        state = stack.registers(prefix)
        at = time.time()
        done = sum(1 for register in state.values() if not register.dirty)
        series.append((round(at - first_write, 2), done))
        if done >= keys:
            all_synced_at = at
            break
        if at - last_write >= bound_s:
            break
        time.sleep(interval_s)
    after = gist_stats(stack.gist_url)
    sample = random.sample(names, min(10, keys))
    api_agrees = sum(
        1 for name in sample if name in state and (synced(client, name)[1] >= 1) == (not state[name].dirty)
    )
    writes = with_files_changed(stack.gist_url, writes_between(before, after))
    figures = write_figures(writes)
    rate = figures["rate_per_min"] / 60
    left = keys - done
    return {
        "keys": keys,
        "namespaces": namespaces,
        "names": names,
        "prefix": prefix,
        "puts": dict(tally.statuses),
        "write_s": round(last_write - first_write, 1),
        "last_write_s": round(last_write - first_write, 2),
        "put_p95": percentiles(tally.latencies)["p95"] if len(tally.latencies) > 1 else None,
        "synced": done,
        "all_synced": all_synced_at is not None,
        "to_all_synced_s": None if all_synced_at is None else round(all_synced_at - last_write, 1),
        "polled_s": round(time.time() - last_write, 1),
        "gists_created": after["gists"] - before["gists"],
        "sharded": sum(1 for register in state.values() if register.shard is not None),
        "distinct_gists": len({r.gist_id for r in state.values() if r.gist_id is not None}),
        **figures,
        "projected_more_s": round(left / rate) if left and rate > 0 else None,
        "api_agrees": f"{api_agrees}/{len(sample)}",
        "series": series,
        "write_times": [round(w.ts - first_write, 3) for w in writes],
    }


def steady_mix(
    stack: Stack,
    names: list[str],
    prefix: str,
    seconds: float,
    clients: int,
    drain_s: float,
    interval_s: float,
    keys_per_gist: int,
) -> dict[str, Any]:
    """`clients` threads PATCH random keys of `names` for `seconds`: each write's sync lag, dirty gists over time."""
    client = stack.client
    tracker = LagTracker()
    dirty: list[tuple[float, int]] = []  # (sampled at, dirty gists)
    dirty_keys: list[tuple[float, int]] = []
    scans: list[float] = []
    sharded: list[int] = []  # registers carrying a shard attribute, per sample
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            began = time.time()
            state = stack.registers(prefix)
            at = time.time()
            tracker.observe(state, at)
            dirty.append((at, dirty_gists(state, keys_per_gist)))
            dirty_keys.append((at, sum(1 for register in state.values() if register.dirty)))
            scans.append(at - began)
            sharded.append(sum(1 for register in state.values() if register.shard is not None))
            stop.wait(interval_s)

    def call() -> httpx.Response:
        name = random.choice(names)
        response = client.patch(f"/v1/state/{name}", json={"n": random.random()}, headers=MERGE)
        if response.status_code == 200:
            tracker.wrote(name, int(response.headers["state-version"]), time.time())
        return response

    before = gist_stats(stack.gist_url)
    start = time.time()
    sampler = threading.Thread(target=sample, name="bench-mix-sampler", daemon=True)
    sampler.start()
    tally, elapsed = load(seconds, clients, call)
    load_end = time.time()
    while tracker.has_pending() and time.time() - load_end < drain_s:
        time.sleep(0.5)
    stop.set()
    sampler.join()
    end = time.time()
    after = gist_stats(stack.gist_url)
    writes = with_files_changed(stack.gist_url, writes_between(before, after))
    unsynced = tracker.unsynced()
    # Not synced by the end: counted at what they had waited (a lower bound).
    lags = tracker.lags + [(at, end - at) for _, _, at in unsynced]
    during = [n for at, n in dirty if at <= load_end]
    mean_dirty = mean(during)
    figures = write_figures(writes)
    per_patch = figures["keys_per_patch"]
    stats = lag_percentiles([lag for _, lag in lags])
    goal = lag_goal_s(mean_dirty) if mean_dirty is not None else None
    return {
        "keys": len(names),
        "writes": tally.statuses["200"],
        "rate": round(tally.statuses["200"] / elapsed, 2),
        "statuses": dict(tally.statuses),
        "seconds": round(elapsed, 1),
        "unsynced": len(unsynced),
        **stats,
        "dirty_mean": _round(mean_dirty, 1),
        "dirty_max": max(during, default=0),
        "dirty_keys_mean": _round(mean([n for at, n in dirty_keys if at <= load_end]), 1),
        "goal_s": _round(goal, 1),
        "goal_met": goal is not None and stats["p95"] is not None and float(stats["p95"]) <= goal,
        "within_own_goal": within_goal(lags, dirty),
        "samples": len(scans),
        "sharded": max(sharded, default=0),
        "keys_per_gist": keys_per_gist,
        "scan_p95_s": round(statistics.quantiles(scans, n=20, method="inclusive")[18], 2) if len(scans) > 1 else None,
        **figures,
        "hourly_keys": round(hourly_steady_state(per_patch)) if per_patch is not None else None,
        "start": start,
        "lags": lags,
        "dirty": dirty,
    }


def patch_calls(log_dir: Path, offsets: dict[Path, int]) -> tuple[dict[int, int], dict[str, float]]:
    """PATCH requests by their DynamoDB calls, and average calls by operation, since `offsets`."""
    counts: Counter[int] = Counter()
    ops: Counter[str] = Counter()
    for log in log_dir.glob("ApiFunction-*.log"):
        with log.open("rb") as handle:
            handle.seek(offsets.get(log, 0))
            text = handle.read().decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("{") and '"aws calls"' in line:
                record = json.loads(line)
                if record.get("resource") == "PATCH /v1/state/{key}":
                    counts[int(record["dynamodb_calls"])] += 1
                    ops.update({k: v for k, v in record["aws_calls"].items() if k.startswith("dynamodb.")})
    n = sum(counts.values())
    return dict(sorted(counts.items())), {op: round(v / n, 2) for op, v in sorted(ops.items())} if n else {}


def log_offsets(log_dir: Path) -> dict[Path, int]:
    """Where each api function log ends now."""
    return {log: log.stat().st_size for log in log_dir.glob("ApiFunction-*.log")}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.state_sync", description="State benchmark: hot key, many keys, steady mix (see the module doc)."
    )
    parser.add_argument("--quick", action="store_true", help="shrink every phase (the whole run in about 3 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run this scenario alone (repeat for more); default: all three",
    )
    parser.add_argument("--seconds", type=float, help="echo and hot-key phase length (default 60, quick 10)")
    parser.add_argument("--clients", type=int, default=4, help="echo and hot-key clients (default 4)")
    parser.add_argument("--bursts", type=int, help="bursts timed to their gist sync (default 5, quick 1)")
    parser.add_argument("--burst-size", type=int, default=10)
    parser.add_argument("--keys", type=int, help="many keys: new keys (default 1000, quick 100)")
    parser.add_argument("--namespaces", type=int, default=10, help="namespaces of the new keys (default 10)")
    parser.add_argument(
        "--sync-bound", type=float, help="many keys: poll bound after the last write (default 180 s, quick 30)"
    )
    parser.add_argument("--mix-seconds", type=float, help="steady mix length (default 180, quick 30; 0 skips it)")
    parser.add_argument("--mix-clients", type=int, default=8, help="steady mix clients (default 8)")
    parser.add_argument("--mix-keys", type=int, help="steady mix keys (default 1000, quick 100)")
    parser.add_argument(
        "--mix-drain", type=float, help="steady mix: wait for its last writes to sync (default 120 s, quick 30)"
    )
    parser.add_argument(
        "--sample-interval", type=float, default=1.0, help="seconds between register samples (default 1)"
    )
    parser.add_argument(
        "--keys-per-gist",
        type=int,
        default=KEYS_PER_GIST,
        help=f"dirty-gist count for registers without a shard attribute (default {KEYS_PER_GIST})",
    )
    parser.add_argument("--plots", type=Path, help="draw the PNGs into this folder (--write-docs: docs/img)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a template parameter for the local stack"
    )
    add_write_docs(parser)
    args = parser.parse_args(argv)
    args.argv = " ".join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--write-docs")
    for name, full, quick in (
        ("seconds", 60.0, 10.0),
        ("bursts", 5, 1),
        ("keys", 1000, 100),
        ("sync_bound", 180.0, 30.0),
        ("mix_seconds", 180.0, 30.0),
        ("mix_keys", 1000, 100),
        ("mix_drain", 120.0, 30.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.scenarios = [s for s in SCENARIOS if s in (args.only or SCENARIOS)]
    if args.mix_seconds <= 0 and "mix" in args.scenarios:
        args.scenarios.remove("mix")
    if args.write_docs and args.plots is None:
        args.plots = IMAGES
    if args.plots is not None and not state_plots.available():
        parser.error("plots need matplotlib: `make bench-state` installs requirements/bench.txt into the dev venv")
    if any("=" not in p for p in args.param):
        parser.error("--param takes NAME=VALUE")
    return args


def hot_scenario(stack: Stack, log_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Echo (the ceiling), the hot key, its DynamoDB calls and gist writes, bursts to sync."""
    client = stack.client
    ceiling = echo(client, args.seconds, args.clients)
    before = gist_stats(stack.gist_url)
    offsets = log_offsets(log_dir)
    hot = hot_key(client, args.seconds, args.clients)
    hot["catch_up_s"] = wait_synced(client, hot["key"], 60)
    calls, ops = patch_calls(log_dir, offsets)
    after = gist_stats(stack.gist_url)
    return {
        "echo": ceiling,
        "hot": hot,
        "hot_gist_writes": after["writes"] - before["writes"],
        "hot_gist_requests": after["requests_total"] - before["requests_total"],
        "calls": calls,
        "ops": ops,
        "delays": burst_to_sync(client, args.bursts, args.burst_size),
    }


def run_scenarios(running: RunningStack, args: argparse.Namespace, progress: Tick = silent) -> dict[str, Any]:
    """The scenarios of `args` against a running stack started with `PARAMS` (and a pool of `POOL_SIZE`)."""
    SERVER_ERRORS.clear()
    began = time.monotonic()
    figures: dict[str, Any] = {"args": args, "hot": None, "many": None, "mix": None, "seed": None}
    stack = Stack(
        client=httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60),
        dynamodb=boto3.client(
            "dynamodb",
            endpoint_url=running.state["moto_url"],
            region_name=REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ),
        table=running.state["functions"]["ApiFunction"]["STATE_TABLE"],
        gist_url=running.state["gist_url"],
    )
    start_log = len(gist_stats(stack.gist_url)["write_log"])
    if "hot" in args.scenarios:
        progress(f"{BENCHMARK}: echo, then one hot key, {args.clients} clients, {args.seconds:g} s each")
        figures.update(hot_scenario(stack, running.log_dir, args))
    many = None
    if "many" in args.scenarios:
        progress(f"{BENCHMARK}: {args.keys} new keys, polled until synced (at most {args.sync_bound:g} s)")
        many = figures["many"] = many_keys(stack, args.keys, args.namespaces, args.sync_bound, args.sample_interval)
    if "mix" in args.scenarios:
        # Last: the mix reuses the many-keys phase's keys (written and, within its bound, synced).
        if many is None or many["keys"] < args.mix_keys:
            progress(f"{BENCHMARK}: seeding {args.mix_keys} keys for the mix")
            many = figures["seed"] = many_keys(
                stack, args.mix_keys, args.namespaces, args.sync_bound, args.sample_interval
            )
        progress(f"{BENCHMARK}: steady mix, {args.mix_clients} clients, {args.mix_seconds:g} s")
        figures["mix"] = steady_mix(
            stack,
            many["names"][: args.mix_keys],
            many["prefix"],
            args.mix_seconds,
            args.mix_clients,
            args.mix_drain,
            args.sample_interval,
            args.keys_per_gist,
        )
    figures["write_log"] = [float(e["ts"]) for e in gist_stats(stack.gist_url)["write_log"][start_log:]]
    figures["elapsed_s"] = round(time.monotonic() - began)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios on a stack of their own and print (or write) the results."""
    args = parse(argv)
    with (
        tempfile.TemporaryDirectory(prefix="cmdgate-bench-state-") as tmp,
        launch(Path(tmp), admin_key=ADMIN_KEY, pool_size=POOL_SIZE, params=(*PARAMS, *args.param)) as running,
    ):
        figures = run_scenarios(running, args)
    figures["plots"] = draw(figures, args.plots) if args.plots is not None else {}
    report(render(figures), SECTION, write_docs=args.write_docs)
    if args.write_docs and figures["many"] is not None:
        write_series(figures["many"])
    return 0


def write_series(many: dict[str, Any]) -> None:
    """The many-keys phase's every poll, as docs/benchmarks-state-sync.csv."""
    SERIES.write_text(
        "seconds_since_first_write,keys_synced,gist_writes\n"
        + "".join(f"{t},{n},{sum(1 for w in many['write_times'] if w <= t)}\n" for t, n in many["series"])
    )
    print(f"wrote {SERIES.relative_to(RESULTS.parent.parent)}")


def headline(f: dict[str, Any]) -> list[Figure]:
    """Each scenario's figure against the same run's baseline: echo throughput, the 60 s bound, the lag formula."""
    out: list[Figure] = []
    hot, many, mix = f["hot"], f["many"], f["mix"]
    if hot is not None:
        clients = f["args"].clients
        out.append(
            Figure(
                BENCHMARK,
                f"hot key PATCH rate, {clients} clients",
                hot["rate"],
                "writes/s",
                f"echo through the front, {clients} clients",
                f["echo"]["rps"],
                f"{hot['seconds']} s each, one key; a 409 STATE_CONTENTION is retried after Retry-After",
                goal_min=0.8,
                baseline_unit="req/s",
            )
        )
        if f["delays"]:
            out.append(
                Figure(
                    BENCHMARK,
                    f"gist sync lag after a burst of {f['args'].burst_size} writes (max)",
                    max(f["delays"]),
                    "s",
                    "goal formula: 1 dirty gist x 1 s + 5 s",
                    lag_goal_s(1),
                    f"{len(f['delays'])} burst(s) on one key, polled every 0.2 s through the API; the steady mix's"
                    " goal formula for one dirty gist",
                    goal_max=1.0,
                )
            )
    if many is not None:
        synced_s = many["to_all_synced_s"] if many["all_synced"] else None
        out.append(
            Figure(
                BENCHMARK,
                f"{many['keys']} new keys: last write to all synced",
                synced_s if synced_s is not None else many["polled_s"],
                "s",
                "goal bound",
                MANY_GOAL_S,
                f"{many['namespaces']} namespaces, registers polled every {f['args'].sample_interval:g} s"
                + ("" if synced_s is not None else f"; {many['synced']} synced when the poll stopped"),
                goal_max=1.0,
                lower_bound=synced_s is None,
            )
        )
    if mix is not None and mix["p95"] is not None and mix["goal_s"] is not None:
        out.append(
            Figure(
                BENCHMARK,
                f"steady mix sync lag p95, {mix['rate']} writes/s",
                float(mix["p95"]),
                "s",
                f"goal formula: {mix['dirty_mean']} dirty gists x 1 s + 5 s",
                float(mix["goal_s"]),
                f"{f['args'].mix_clients} clients PATCH {mix['keys']} keys for {mix['seconds']} s; lag from 2xx to a"
                " sample showing it synced",
                goal_max=1.0,
            )
        )
    return out


def draw(figures: dict[str, Any], folder: Path) -> dict[str, Path]:
    """The PNGs of the scenarios that ran, in `folder`; {scenario: path}."""
    drawn: dict[str, Path] = {}
    hot, many, mix = figures["hot"], figures["many"], figures["mix"]
    if hot is not None and len(hot["latencies"]) > 1:
        drawn["hot"] = folder / state_plots.HOT_KEY_PNG
        state_plots.hot_key(hot["latencies"], figures["args"].clients, drawn["hot"])
    if many is not None:
        drawn["many"] = folder / state_plots.MANY_KEYS_PNG
        state_plots.many_keys(many["series"], many["write_times"], many["keys"], many["last_write_s"], drawn["many"])
    if mix is not None and mix["lags"]:
        drawn["mix"] = folder / state_plots.MIX_PNG
        state_plots.steady_mix(mix["lags"], mix["dirty"], mix["start"], mix["seconds"], drawn["mix"])
    for path in drawn.values():
        print(f"plotted {path}")
    return drawn


def _image(figures: dict[str, Any], scenario: str, alt: str) -> list[str]:
    """A Markdown image line for a plot written next to docs/benchmarks.md (none for plots elsewhere)."""
    path = figures["plots"].get(scenario)
    if path is None or path.parent.resolve() != IMAGES.resolve():
        return []
    return [f"![{alt}](img/{path.name})", ""]


HOW_TO_RUN = [
    "Each scenario is one command from a fresh clone (`make bench-state` sets up the venvs, installs",
    "requirements/bench.txt for the plots and runs `sam build` first): `make bench-state` runs all three,",
    '`make bench-state ARGS="--only hot"` (or `many`, `mix`) one alone, `ARGS="--quick"` shrinks every phase',
    '(about 3 minutes), `ARGS="--write-docs"` rewrites this section, its plots in docs/img/ and',
    "benchmarks-state-sync.csv (flags: `python -m bench.state_sync --help`).",
    "",
]


def render(f: dict[str, Any]) -> str:
    """The benchmarks.md section."""
    args = f["args"]
    invoked = f' ARGS="{args.argv}"' if args.argv else ""
    command = getattr(args, "command", None) or f"make bench-state{invoked}"
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `{command}`"
        f" (bench/state_sync.py, {f['elapsed_s']} s{getattr(args, 'stack_note', '')}) on this machine",
        "(2 cores running the whole local stack: moto, the Lambda emulator, the API front and the loopback",
        "Gist API), default gist budget 1 write/s, 80/min, 500/h. The stack is the ceiling, so the state",
        "figures are ratios to the same run's echo throughput with the same clients.",
        "",
        *HOW_TO_RUN,
    ]
    if f["hot"] is not None:
        lines += render_hot(f)
    if f["many"] is not None:
        lines += render_many(f)
    if f["mix"] is not None:
        lines += render_mix(f)
    if f["write_log"]:
        lines += [
            f"Whole run: {len(f['write_log'])} gist writes, at most {max_in_window(f['write_log'], 1.0)} in any 1 s,"
            f" {max_in_window(f['write_log'], 60.0)} in any 60 s (limits 1, 80).",
            "",
        ]
    if SERVER_ERRORS:
        lines += [f"5xx answers to the benchmark's own reads (each retried): {dict(SERVER_ERRORS)}.", ""]
    return "\n".join(lines)


def render_hot(f: dict[str, Any]) -> list[str]:
    args, echo_, hot, delays = f["args"], f["echo"], f["hot"], f["delays"]
    ratio = hot["rate"] / echo_["rps"] if echo_["rps"] else 0.0
    mean_calls = sum(k * v for k, v in f["calls"].items()) / max(1, sum(f["calls"].values()))
    cuts = statistics.quantiles(delays, n=20, method="inclusive") if len(delays) > 1 else delays * 19
    return [
        "Hot key (optimistic write path: register GetItem + one TransactWriteItems with a no-lease",
        "ConditionCheck, full-jitter retries, then 409 STATE_CONTENTION):",
        "",
        f"- echo through the API front, {args.clients} clients, {echo_['seconds']} s: {echo_['ok']} requests,"
        f" **{echo_['rps']} req/s** (answers {echo_['statuses']});",
        f"- PATCH on one key, {args.clients} clients, {hot['seconds']} s: {hot['writes']} writes,"
        f" **{hot['rate']} writes/s** = **{ratio:.2f}x echo** (goal >= 0.8)"
        f" = **{hot['rate'] / GIST_BUDGET_PER_S:.1f}x** the gist budget of 1 write/s;",
        f"- PATCH latency p50 {hot['p50']} ms, p95 {hot['p95']} ms, p99 {hot['p99']} ms (over {hot['n']} answers);",
        f"- 409 STATE_CONTENTION answers: {hot['contention']} (retried by the client after Retry-After, not counted"
        f" as writes; all answers {hot['statuses']});",
        f"- DynamoDB calls per PATCH: mean {mean_calls:.2f}, distribution {f['calls']}, by operation {f['ops']}, i.e."
        f" {f['ops'].get('dynamodb.TransactWriteItems', 1.0) - 1:.2f} lost races retried inside the api per PATCH"
        " (previous figure, with the lease: 5 per PATCH, 6.5 writes/s, p95 1.7 s);",
        f"- gist writes for those {hot['writes']} state writes: {f['hot_gist_writes']} ({f['hot_gist_requests']}"
        f" gist API calls), i.e. {f['hot_gist_requests'] / max(hot['writes'], 1):.3f} gist calls per state write"
        f" (coalescing); the gist held the last version {hot['catch_up_s'] and round(hot['catch_up_s'], 1)} s"
        " after the phase;",
        f"- last write of a burst of {args.burst_size} -> gist synced, over {len(delays)} burst(s):"
        f" p50 {statistics.median(delays):.2f} s, p95 {cuts[18]:.2f} s, max {max(delays):.2f} s.",
        "",
        *_image(f, "hot", "Hot-key PATCH latency histogram"),
    ]


def render_many(f: dict[str, Any]) -> list[str]:
    args, many = f["args"], f["many"]
    series = many["series"]
    step = max(1, math.ceil(len(series) / 8))
    picked = series[::step] + ([series[-1]] if (len(series) - 1) % step else [])
    shown = ", ".join(f"{t:.0f} s: {n}" for t, n in picked)
    if many["all_synced"]:
        outcome = (
            f"**all {many['keys']} keys synced {many['to_all_synced_s']} s after the last write** (goal <= 60 s:"
            f" {'met' if many['to_all_synced_s'] <= MANY_GOAL_S else 'missed'})"
        )
    else:
        more = many["projected_more_s"]
        outcome = (
            f"**{many['synced']} of {many['keys']} keys synced** {many['polled_s']} s after the last write (bound"
            f" {args.sync_bound:.0f} s reached; goal <= 60 s: missed"
            + (f"; the rest would take about {more} s more at the measured rate)" if more is not None else ")")
        )
    layout = (
        f"{many['sharded']} of {many['keys']} registers carry a shard attribute"
        if many["sharded"]
        else "no register carries a shard attribute (one gist per key)"
    )
    return [
        f"Many keys: {many['keys']} new keys in {many['namespaces']} namespaces, each written once, then the"
        f" registers polled every {args.sample_interval:g} s until every key's synced version equals its version"
        f" or {args.sync_bound:.0f} s pass ({layout}; {many['distinct_gists']} distinct gist ids):",
        "",
        f"- writes: {many['write_s']} s for {many['keys']} PUTs (answers {many['puts']}, p95 {many['put_p95']} ms);",
        f"- {outcome}; keys synced by seconds since the first write: {shown}"
        + (f" (every poll in {SERIES.name})" if args.write_docs else "")
        + ";",
        f"- gists created: **{many['gists_created']}**, gist writes: **{many['gist_writes']}** {many['by_method']},"
        f" at most {many['max_1s']} in any 1 s and {many['max_60s']} in any 60 s (limits 1 and 80),"
        f" {many['rate_per_min']} writes/min;",
        f"- keys carried per gist write: {many['keys_per_write']} (POST {many['keys_per_post']}, PATCH"
        f" {many['keys_per_patch']}; files changed against the gist's previous revision, {many['keys_carried']}"
        f" in all, {many['writes_unread']} writes not read back);",
        f"- the API's Gist-Synced-Version agreed with the polled registers for {many['api_agrees']} sampled keys.",
        "",
        *_image(f, "many", "Many keys: keys synced and cumulative gist writes over time"),
    ]


def render_mix(f: dict[str, Any]) -> list[str]:
    args, mix = f["args"], f["mix"]
    source = (
        "seeded first (written once and polled like the many-keys phase)"
        if f["seed"] is not None
        else "the many-keys phase's keys"
    )
    hourly = (
        f"**{mix['hourly_keys']} key syncs/h** ({GIST_WRITES_PER_HOUR} x {mix['keys_per_patch']} keys per gist PATCH)"
        if mix["hourly_keys"] is not None
        else "n/a (no gist PATCH read back)"
    )
    verdict = "met" if mix["goal_met"] else "missed"
    counted = (
        "by the registers' shard attribute"
        if mix["sharded"]
        else f"no register carries a shard attribute: ceil(dirty keys of a namespace / {mix['keys_per_gist']})"
    )
    return [
        f"Steady mix: {args.mix_clients} clients PATCH random keys out of {mix['keys']} ({source}) for"
        f" {mix['seconds']} s, then up to {args.mix_drain:.0f} s for the last writes to sync; registers sampled"
        f" every {args.sample_interval:g} s ({mix['samples']} samples, scan p95 {mix['scan_p95_s']} s: lags are"
        " upper bounds at that resolution):",
        "",
        f"- {mix['writes']} writes ({mix['rate']} writes/s, answers {mix['statuses']});",
        f"- sync lag per write: p50 {mix['p50']} s, **p95 {mix['p95']} s**, max {mix['max']} s over {mix['n']}"
        f" writes ({mix['unsynced']} not synced by the end, counted at what they had waited);",
        f"- dirty gists while writing: mean {mix['dirty_mean']}, max {mix['dirty_max']} (dirty keys mean"
        f" {mix['dirty_keys_mean']}; {counted});"
        f" goal p95 <= {mix['dirty_mean']} x 1 s + 5 s = {mix['goal_s']} s: **{verdict}**;"
        f" {mix['within_own_goal']} of {mix['n']} writes synced within the goal for the dirty gists when written;",
        f"- gist writes: {mix['gist_writes']} {mix['by_method']}, at most {mix['max_1s']} in any 1 s and"
        f" {mix['max_60s']} in any 60 s, {mix['rate_per_min']} writes/min; keys carried per gist PATCH"
        f" {mix['keys_per_patch']};",
        f"- hourly steady state the 500/h limit allows: {hourly}.",
        "",
        *_image(f, "mix", "Steady mix: sync lag percentiles against dirty gists over time"),
    ]


if __name__ == "__main__":
    sys.exit(main())
