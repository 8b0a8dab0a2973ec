"""Benchmark of versioned state with write-behind gist sync; prints figures (and writes docs/benchmarks.md if asked).

    make bench-state                        # print the figures (about 6 minutes)
    make bench-state ARGS="--quick"         # shorter phases (under 2 minutes)
    make bench-state ARGS="--write-docs"    # and replace this benchmark's section of docs/benchmarks.md
                                            # (plus docs/benchmarks-state-sync.csv, the keys-synced series)

The machine (2 cores) running the whole local stack is the ceiling, so state figures are ratios
to the same run's echo throughput with the same number of clients:

- echo through the API front, `--clients` clients for `--seconds` (the same run's ceiling);
- hot key: `--clients` clients PATCH one key for `--seconds`; writes/s against echo req/s (goal
  >= 0.8) and against the gist budget of 1 write/s; PATCH p50/p95/p99; 409 STATE_CONTENTION
  answers (retried by the client after Retry-After, counted apart from writes); DynamoDB calls per
  PATCH (botocore hooks in the api function); gist writes for those state writes (coalescing);
- time from the last write of a burst to its gist sync (p50/p95 over `--bursts` bursts);
- many keys: `--keys` new keys in `--namespaces` namespaces written once, then polled until
  every key's synced version equals its version or `--sync-bound` seconds pass: keys synced over
  time, gists created, gist writes, most gist writes in any 1 s and 60 s, projected time for all;
- steady mix (`--mix-seconds`, off by default to keep the run in its time box): `--mix-clients`
  clients PATCH random keys out of `--mix-keys`; sync lag p50/p95/max.
"""

from __future__ import annotations

import argparse
import itertools
import json
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

from bench.run import ADMIN_KEY, RESULTS, add_write_docs, percentiles, report
from cmdgate_local.launcher import launch
from cmdgate_local.stack import LOCAL_CREDENTIALS
from cmdgate_local.template import REGION

SECTION = "## State: write-behind gist sync"
SERIES = RESULTS.parent / "benchmarks-state-sync.csv"
MERGE = {"Content-Type": "application/merge-patch+json"}
CREATE = {"If-None-Match": "*"}
GIST_BUDGET_PER_S = 1.0
CONTENTION = "STATE_CONTENTION"


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
    }


def synced(client: httpx.Client, key: str) -> tuple[int, int]:
    """(State-Version, Gist-Synced-Version) of one key, as the API answers them."""
    headers = client.get(f"/v1/state/{key}").raise_for_status().headers
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


def registers(dynamodb: Any, table: str, prefix: str) -> dict[str, tuple[int, int]]:
    """{key: (version, synced_version)} of every register whose key starts with `prefix`.

    The same item the API's State-Version and Gist-Synced-Version headers are read from; a scan
    instead of a GET per key keeps the poll from loading the stack it measures.
    """
    found: dict[str, tuple[int, int]] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(pk, :p) AND sk = :r",
        "ExpressionAttributeValues": {":p": {"S": f"key#{prefix}"}, ":r": {"S": "register"}},
        "ProjectionExpression": "pk, version, synced_version",
    }
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page["Items"]:
            found[item["pk"]["S"].removeprefix("key#")] = (
                int(item["version"]["N"]),
                int(item.get("synced_version", {}).get("N", "0")),
            )
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def many_keys(
    client: httpx.Client, dynamodb: Any, table: str, gist_url: str, keys: int, namespaces: int, bound_s: float
) -> dict[str, Any]:
    """Write `keys` new keys once, then poll until all are synced or `bound_s` passes."""
    run = uuid.uuid4().hex[:6]
    prefix = f"bench.many{run}."
    names = [f"{prefix}ns{i % namespaces}.k{i}" for i in range(keys)]
    before = gist_stats(gist_url)
    write_started = time.monotonic()
    tally = Tally()

    def put(name: str) -> None:
        started = time.perf_counter()
        response = client.put(f"/v1/state/{name}", json={"n": 1}, headers=CREATE)
        tally.add(started, status_of(response))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, names))
    written = time.monotonic()
    series: list[tuple[float, int, int]] = []  # (s since the first write, keys synced, gists created)
    done = 0
    while True:
        state = registers(dynamodb, table, prefix)
        done = sum(1 for version, synced_version in state.values() if synced_version >= version)
        series.append(
            (round(time.monotonic() - write_started, 1), done, gist_stats(gist_url)["gists"] - before["gists"])
        )
        if done >= keys or time.monotonic() - written >= bound_s:
            break
        time.sleep(2.0)
    polled = time.monotonic() - written
    after = gist_stats(gist_url)
    sample = random.sample(names, min(10, keys))
    api_agrees = sum(1 for name in sample if (synced(client, name)[1] >= 1) == (state[name][1] >= state[name][0]))
    log = [float(entry["ts"]) for entry in after["write_log"][len(before["write_log"]) :]]
    sync_seconds = (log[-1] - log[0]) if len(log) > 1 else 0.0
    rate = (len(log) - 1) / sync_seconds if sync_seconds > 0 else 0.0
    return {
        "keys": keys,
        "namespaces": namespaces,
        "puts": dict(tally.statuses),
        "write_s": round(written - write_started, 1),
        "put_p95": percentiles(tally.latencies)["p95"],
        "synced": done,
        "polled_s": round(polled, 1),
        "all_synced": done >= keys,
        "gists_created": after["gists"] - before["gists"],
        "gist_writes": after["writes"] - before["writes"],
        "max_1s": max_in_window(log, 1.0),
        "max_60s": max_in_window(log, 60.0),
        "rate_per_min": round(rate * 60, 1),
        "projected_s": round(keys / rate) if rate > 0 else None,
        "api_agrees": f"{api_agrees}/{len(sample)}",
        "series": series,
    }


def steady_mix(client: httpx.Client, seconds: float, clients: int, keys: int, bound_s: float) -> dict[str, Any]:
    """`clients` threads PATCH random keys out of `keys` for `seconds`; sync lag of every write."""
    prefix = f"bench.mix{uuid.uuid4().hex[:6]}."
    names = [f"{prefix}k{i}" for i in range(keys)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: client.put(f"/v1/state/{n}", json={"n": 0}, headers=CREATE).raise_for_status(), names))
    writes: list[tuple[str, int, float]] = []  # (key, version, written at)
    lock = threading.Lock()

    def call() -> httpx.Response:
        name = random.choice(names)
        response = client.patch(f"/v1/state/{name}", json={"n": random.random()}, headers=MERGE)
        if response.status_code == 200:
            with lock:
                writes.append((name, int(response.headers["state-version"]), time.monotonic()))
        return response

    tally, elapsed = load(seconds, clients, call)
    pending = {(name, version): at for name, version, at in writes}
    lags: list[float] = []
    deadline = time.monotonic() + bound_s
    while pending and time.monotonic() < deadline:
        for name in {name for name, _ in pending}:
            _, synced_version = synced(client, name)
            now = time.monotonic()
            for entry in [e for e in pending if e[0] == name and e[1] <= synced_version]:
                lags.append(now - pending.pop(entry))
        time.sleep(1.0)
    lags += [bound_s + seconds] * len(pending)  # not synced within the bound: counted at the bound
    cuts = statistics.quantiles(lags, n=20, method="inclusive") if len(lags) > 1 else lags * 19
    return {
        "writes": len(writes),
        "rate": round(len(writes) / elapsed, 2),
        "statuses": dict(tally.statuses),
        "unsynced": len(pending),
        "p50": round(statistics.median(lags), 1) if lags else None,
        "p95": round(cuts[18], 1) if lags else None,
        "max": round(max(lags), 1) if lags else None,
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short phases (under 2 minutes)")
    parser.add_argument("--seconds", type=float, help="echo and hot-key phase length (default 60, quick 15)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--bursts", type=int, help="default 5, quick 1")
    parser.add_argument("--burst-size", type=int, default=10)
    parser.add_argument("--keys", type=int, help="many-keys phase: new keys (default 300, quick 60)")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--sync-bound", type=float, help="many-keys poll bound in s (default 120, quick 30)")
    parser.add_argument("--mix-seconds", type=float, default=0.0, help="steady mix length (default 0: skipped)")
    parser.add_argument("--mix-clients", type=int, default=8)
    parser.add_argument("--mix-keys", type=int, default=200)
    add_write_docs(parser)
    args = parser.parse_args(argv)
    args.argv = " ".join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--write-docs")
    for name, full, quick in (
        ("seconds", 60.0, 15.0),
        ("bursts", 5, 1),
        ("keys", 300, 60),
        ("sync_bound", 120.0, 30.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print (or write) the results."""
    args = parse(argv)
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="cmdgate-bench-state-") as tmp,
        launch(Path(tmp), admin_key=ADMIN_KEY, pool_size=6, params=("StateSyncVisibilityTimeoutS=5",)) as stack,
    ):
        client = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
        gist_url = stack.state["gist_url"]
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=stack.state["moto_url"],
            region_name=REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        table = stack.state["functions"]["ApiFunction"]["STATE_TABLE"]
        ceiling = echo(client, args.seconds, args.clients)
        before = gist_stats(gist_url)
        offsets = log_offsets(stack.log_dir)
        hot = hot_key(client, args.seconds, args.clients)
        hot["catch_up_s"] = wait_synced(client, hot["key"], 60)
        calls, ops = patch_calls(stack.log_dir, offsets)
        after_hot = gist_stats(gist_url)
        delays = burst_to_sync(client, args.bursts, args.burst_size)
        many = many_keys(client, dynamodb, table, gist_url, args.keys, args.namespaces, args.sync_bound)
        # Last: its new keys' gist creations would otherwise delay the many-keys sync.
        mix = steady_mix(client, args.mix_seconds, args.mix_clients, args.mix_keys, 120) if args.mix_seconds else None
        final = gist_stats(gist_url)
    figures = {
        "args": args,
        "elapsed_s": round(time.monotonic() - began),
        "echo": ceiling,
        "hot": hot,
        "hot_gist_writes": after_hot["writes"] - before["writes"],
        "hot_gist_requests": after_hot["requests_total"] - before["requests_total"],
        "calls": calls,
        "ops": ops,
        "delays": delays,
        "mix": mix,
        "many": many,
        "write_log": [float(entry["ts"]) for entry in final["write_log"]],
    }
    report(render(figures), SECTION, write_docs=args.write_docs)
    if args.write_docs:
        SERIES.write_text(
            "seconds_since_first_write,keys_synced,gists_created\n"
            + "".join(f"{t},{n},{g}\n" for t, n, g in many["series"])
        )
        print(f"wrote {SERIES.relative_to(RESULTS.parent.parent)}")
    return 0


def render(f: dict[str, Any]) -> str:
    """The benchmarks.md section."""
    args, echo_, hot, many = f["args"], f["echo"], f["hot"], f["many"]
    ratio = hot["rate"] / echo_["rps"] if echo_["rps"] else 0.0
    mean_calls = sum(k * v for k, v in f["calls"].items()) / max(1, sum(f["calls"].values()))
    delays = f["delays"]
    cuts = statistics.quantiles(delays, n=20, method="inclusive") if len(delays) > 1 else delays * 19
    series = many["series"]
    step = max(1, len(series) // 8)
    shown = ", ".join(
        f"{t:.0f} s: {n}" for t, n, _ in series[::step] + ([series[-1]] if len(series) % step != 1 else [])
    )
    invoked = f' ARGS="{args.argv}"' if args.argv else ""
    projected = f"{many['projected_s']} s" if many["projected_s"] is not None else "n/a (no gist writes)"
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench-state"
        f"{invoked}` (bench/state_sync.py, {f['elapsed_s']} s) on this machine",
        "(2 cores running the whole local stack: moto, the Lambda emulator, the API front and the loopback",
        "Gist API), default gist budget 1 write/s, 80/min, 500/h. The stack is the ceiling, so the state",
        "figures are ratios to the same run's echo throughput with the same clients.",
        "",
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
        f"Many keys (one secret gist per key: the baseline a sharded layout must beat). {many['keys']} new keys in"
        f" {many['namespaces']} namespaces, each written once, then polled until every key's synced version equals"
        f" its version or {args.sync_bound:.0f} s pass (the issue's 1,000 keys would need over 1,000 gist creations,"
        " more than 12 minutes at 80/min, and more than 16 minutes at the 1 s spacing: beyond this run's time box):",
        "",
        f"- writes: {many['write_s']} s for {many['keys']} PUTs (answers {many['puts']}, p95 {many['put_p95']} ms);",
        f"- **{many['synced']} of {many['keys']} keys synced** {many['polled_s']} s after the last write"
        f" ({'all' if many['all_synced'] else 'bound reached'}); keys synced by seconds since the first write: {shown}"
        f" (every poll in {SERIES.name});",
        f"- gists created: {many['gists_created']}, gist writes: {many['gist_writes']}, at most {many['max_1s']} in any"
        f" 1 s and {many['max_60s']} in any 60 s (limits 1 and 80); measured rate {many['rate_per_min']} gist"
        f" writes/min, so **all {many['keys']} keys would take {projected}** to sync;",
        f"- the API's Gist-Synced-Version agreed with the polled registers for {many['api_agrees']} sampled keys.",
        "",
        f"Whole run: at most {max_in_window(f['write_log'], 1.0)} gist write in any 1 s,"
        f" {max_in_window(f['write_log'], 60.0)} in any 60 s (limits 1, 80).",
        "",
    ]
    mix = f["mix"]
    if mix is None:
        lines += [
            "Steady mix: not run (`--mix-seconds`, off by default to keep the run in its time box).",
            "",
        ]
    else:
        lines += [
            f"Steady mix: {args.mix_clients} clients PATCH random keys out of {args.mix_keys}"
            f" for {args.mix_seconds:.0f} s:"
            f" {mix['writes']} writes ({mix['rate']} writes/s, answers {mix['statuses']}); sync lag p50 {mix['p50']} s,"
            f" p95 {mix['p95']} s, max {mix['max']} s ({mix['unsynced']} writes not synced within 120 s, counted at the"
            " bound; run after the many-keys phase, so it inherits whatever of that phase was still unsynced).",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
