"""Benchmark of the command path on the local stack; prints figures (and writes docs/benchmarks.md if asked).

    make bench                                  # print the figures
    make bench ARGS="--requests 500 --write-docs"   # and replace this benchmark's section of docs/benchmarks.md

Measures a sync idempotent `echo` (a new Idempotency-Key per request):
- through the API front (authorizer cached, as API Gateway caches it), at 1 and 8 concurrent clients;
- invoking the api function directly in the Lambda emulator, and a bare handler (bench/bare_handler)
  that makes the same DynamoDB and SQS calls with plain boto3 and nothing else - the ratio of the
  two is the cost of the layer (Powertools, pydantic, our modules);
- DynamoDB round trips per request, counted by botocore event hooks inside the api function
  (its `aws calls` log line per request).
Figures are from this machine (2 cores); moto stands in for DynamoDB, so absolute times are not
AWS's - the ratios and call counts are what carry over.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from cmdgate_local.lambda_runtime import ExecutionEnvironment, FunctionPool, FunctionRuntime, rie_binary
from cmdgate_local.launcher import ROOT, RunningStack, launch
from cmdgate_local.stack import LOCAL_CREDENTIALS, StackConfig
from cmdgate_local.template import REGION, Template, load_template

ADMIN_KEY = "cg_bench_admin_key"
RESULTS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Command path: sync idempotent echo"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of latencies in ms."""
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {
        "n": len(samples_ms),
        "p50": round(cuts[49], 1),
        "p95": round(cuts[94], 1),
        "p99": round(cuts[98], 1),
        "mean": round(statistics.fmean(samples_ms), 1),
    }


def run_load(call: Callable[[int], None], requests: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (ms) of `requests` calls spread over `concurrency` threads, and the wall time (s)."""
    latencies: list[float] = []

    def one(i: int) -> None:
        started = time.perf_counter()
        call(i)
        latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(requests)))
    return latencies, time.perf_counter() - started


def through_api(stack: RunningStack, requests: int, concurrency: int) -> dict[str, Any]:
    """Sync idempotent echo through the API front."""
    client = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)

    def call(i: int) -> None:
        response = client.post(
            "/v1/commands/echo", json={"message": f"bench {i}"}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        if response.status_code != 200:
            raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

    run_load(call, concurrency * 2, concurrency)  # warm every environment first
    latencies, wall = run_load(call, requests, concurrency)
    return {**percentiles(latencies), "rps": round(requests / wall, 1)}


def proxy_event(i: int) -> dict[str, Any]:
    """The API Gateway event of one echo request, as the front builds it after the authorizer."""
    event: dict[str, Any] = json.loads((ROOT / "events" / "api_run_echo_sync.json").read_text())
    event["headers"]["Idempotency-Key"] = uuid.uuid4().hex
    event["multiValueHeaders"]["Idempotency-Key"] = [event["headers"]["Idempotency-Key"]]
    event["body"] = json.dumps({"message": f"bench {i}"})
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    # As the authorizer passes it for the bootstrap admin: a limit the benchmark never reaches.
    event["requestContext"]["authorizer"]["rate_limit"] = json.dumps({"quota": 1_000_000, "window_s": 60})
    return event


def direct_pool(runtime: FunctionRuntime, size: int, log_dir: Path) -> FunctionPool:
    """`size` emulator environments of one function, started."""
    config = StackConfig(root=ROOT)
    rie = rie_binary(config.sam_site_packages)
    pool = FunctionPool([ExecutionEnvironment(runtime, i, rie, config.runtime_python, log_dir) for i in range(size)])
    pool.start()
    return pool


def direct(pool: FunctionPool, requests: int, concurrency: int) -> dict[str, Any]:
    """Invoke a pool directly (no front, no authorizer) with echo events."""

    def call(i: int) -> None:
        result = pool.invoke(proxy_event(i))
        if result.function_error or result.json().get("statusCode") != 200:
            raise RuntimeError(f"unexpected answer: {result.payload[:300]!r}")

    run_load(call, concurrency * 2, concurrency)
    latencies, wall = run_load(call, requests, concurrency)
    return {**percentiles(latencies), "rps": round(requests / wall, 1)}


def _run_command_records(log_dir: Path, prefix: str) -> list[dict[str, Any]]:
    """The `aws calls` log records of `POST /v1/commands/{name}` requests."""
    records = []
    for log in log_dir.glob(f"{prefix}-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"aws calls"' in line:
                record = json.loads(line)
                if record.get("resource") == "POST /v1/commands/{name}":
                    records.append(record)
    return records


def dynamodb_calls(log_dir: Path, prefix: str) -> dict[int, int]:
    """How many requests made how many DynamoDB calls."""
    return dict(sorted(Counter(int(r["dynamodb_calls"]) for r in _run_command_records(log_dir, prefix)).items()))


def call_breakdown(log_dir: Path, prefix: str) -> dict[str, float]:
    """Average calls per request by operation."""
    records = _run_command_records(log_dir, prefix)
    totals: Counter[str] = Counter()
    for record in records:
        totals.update(record["aws_calls"])
    return {op: round(n / len(records), 2) for op, n in sorted(totals.items())} if records else {}


def rate_limit_retries(log_dir: Path, prefix: str) -> tuple[int, int]:
    """(bucket takes, takes needing a second write) summed over the environments (their last totals)."""
    takes = retried = 0
    for log in log_dir.glob(f"{prefix}-*.log"):
        last: dict[str, Any] | None = None
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"rate_limit_takes"' in line:
                last = json.loads(line)
        if last is not None:
            takes += int(last["rate_limit_takes"])
            retried += int(last["rate_limit_retried_takes"])
    return takes, retried


def runtimes(stack: RunningStack) -> tuple[FunctionRuntime, FunctionRuntime]:
    """The api function and the bare handler, with the running stack's resources."""
    build = ROOT / ".aws-sam" / "build"
    spec = Template(load_template(ROOT / "template.yaml")).functions()["ApiFunction"]
    api = FunctionRuntime(
        name="ApiFunction",
        handler=spec.handler,
        code_dir=build / "ApiFunction",
        layer_dirs=tuple(build / layer / "python" for layer in spec.layers),
        environment=dict(stack.state["functions"]["ApiFunction"]),
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
    )
    env = stack.state["functions"]["ApiFunction"]
    bare = FunctionRuntime(
        name="BareHandler",
        handler="app.lambda_handler",
        code_dir=ROOT / "bench" / "bare_handler",
        layer_dirs=(),
        environment={
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": stack.state["moto_url"],
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **{k: env[k] for k in ("EXECUTIONS_TABLE", "IDEMPOTENCY_TABLE", "CONTROL_TABLE", "EVENTS_QUEUE_URL")},
        },
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
    )
    return api, bare


def render(figures: dict[str, Any]) -> str:
    """The benchmarks.md section."""
    lines = [
        SECTION,
        "",
        f"Measured {figures['when']} on {figures['machine']} by `make bench` (bench/run.py); moto stands in for",
        "DynamoDB and SQS on loopback, so absolute latencies are this machine's, not AWS's: the call counts and the",
        "ratio to the bare handler are what carry over.",
        "",
        "| path | clients | requests | p50 ms | p95 ms | p99 ms | req/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in figures["latency"].items():
        for concurrency, row in rows.items():
            lines.append(
                f"| {name} | {concurrency} | {row['n']} | {row['p50']} | {row['p95']} | {row['p99']} | {row['rps']} |"
            )
    lines += ["", "Layer cost (api function / bare handler, both invoked directly in the emulator):", ""]
    for concurrency, ratio in figures["layer_cost"].items():
        lines.append(f"- {concurrency} client(s): p50 x{ratio['p50']}, p95 x{ratio['p95']}, p99 x{ratio['p99']}")
    lines += [
        "",
        "DynamoDB round trips per request (botocore hooks in the api function, authorizer cached):",
        "",
        f"- distribution: {figures['dynamodb_calls']}",
        f"- by operation: {figures['call_breakdown']}",
        f"- rate-limit takes needing a second UpdateItem (mispredicted GCRA branch): {figures['rate_limit_retries']}",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str, title: str = SECTION) -> None:
    """Replace one benchmark's section of docs/benchmarks.md (it starts with `title`), keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    if title in text:
        head, _, rest = text.partition(title)
        following = rest.find("\n## ")
        text = head + section + (rest[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def add_write_docs(parser: argparse.ArgumentParser) -> None:
    """The flag that lets a benchmark replace its section of docs/benchmarks.md."""
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"also replace this benchmark's section of {RESULTS.relative_to(ROOT)} (default: only print)",
    )


def report(section: str, title: str, *, write_docs: bool) -> None:
    """Print a benchmark's section; write it into docs/benchmarks.md only when asked."""
    print(section)
    if write_docs:
        write_section(section, title)
        print(f"wrote {RESULTS.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print (or write) the results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    add_write_docs(parser)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "latency": {},
    }
    with tempfile.TemporaryDirectory(prefix="cmdgate-bench-") as tmp:
        workdir = Path(tmp)
        with launch(workdir, admin_key=ADMIN_KEY, pool_size=8, params=("CommandPacks=builtin",)) as stack:
            figures["latency"]["API front -> api function"] = {c: through_api(stack, args.requests, c) for c in (1, 8)}
            figures["dynamodb_calls"] = dynamodb_calls(stack.log_dir, "ApiFunction")
            figures["call_breakdown"] = call_breakdown(stack.log_dir, "ApiFunction")
            takes, retried = rate_limit_retries(stack.log_dir, "ApiFunction")
            figures["rate_limit_retries"] = f"{retried} of {takes} ({100 * retried / max(1, takes):.1f} %)"
            api, bare = runtimes(stack)
            direct_logs = workdir / "direct"
            direct_logs.mkdir()
            pools = {
                "api function (direct)": direct_pool(api, 8, direct_logs),
                "bare handler (direct)": direct_pool(bare, 8, direct_logs),
            }
            try:
                for name, pool in pools.items():
                    figures["latency"][name] = {c: direct(pool, args.requests, c) for c in (1, 8)}
            finally:
                for pool in pools.values():
                    pool.stop()
    layer, bare_rows = figures["latency"]["api function (direct)"], figures["latency"]["bare handler (direct)"]
    figures["layer_cost"] = {
        c: {p: round(layer[c][p] / bare_rows[c][p], 2) for p in ("p50", "p95", "p99")} for c in (1, 8)
    }
    report(render(figures), SECTION, write_docs=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
