"""Benchmark of the command path on the local stack; prints figures (and writes docs/benchmarks.md if asked).

    make bench-command                                    # print the figures
    make bench-command ARGS="--requests 500 --write-docs" # and replace its section of docs/benchmarks.md
    make bench                                            # every benchmark, this one included (bench/suite.py)

Measures a sync idempotent `echo` (a new Idempotency-Key per request), every environment of a pool
warmed first (concurrent calls, one per environment), so warm figures hold no cold start:
- through the API front (authorizer cached, as API Gateway caches it), at 1, 8 and 32 concurrent
  clients (32 is more clients than environments: requests queue at the front);
- invoking the api function directly in the Lambda emulator, and a bare handler (bench/bare_handler)
  that makes the same DynamoDB and SQS calls with plain boto3 and nothing else, at 1 and 8 clients -
  the ratio of the two is the cost of the layer (Powertools, pydantic, our modules);
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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import plots, state_plots
from bench.report import Figure, Tick, replace_marked, silent, slug
from cmdgate_local.lambda_runtime import ExecutionEnvironment, FunctionPool, FunctionRuntime, rie_binary
from cmdgate_local.launcher import ROOT, RunningStack, launch
from cmdgate_local.stack import LOCAL_CREDENTIALS, StackConfig
from cmdgate_local.template import REGION, Template, load_template

ADMIN_KEY = "cg_bench_admin_key"
RESULTS = ROOT / "docs" / "benchmarks.md"
IMAGES = RESULTS.parent / "img"
SECTION = "## Command path: sync idempotent echo"
BENCHMARK = "command path"
FRONT = "API front -> api function"
API_DIRECT = "api function (direct)"
BARE_DIRECT = "bare handler (direct)"
CLIENTS = (1, 8, 32)  # through the front
DIRECT_CLIENTS = (1, 8)  # api function and bare handler invoked directly
POOL_SIZE = 8


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


def warm(call: Callable[[int], None], environments: int) -> None:
    """Start every environment of a pool: `environments` concurrent calls each take an idle one, twice over.

    One client alone would go round the pool's idle queue and meet each environment's cold start
    inside the sample.
    """
    run_load(call, environments * 2, environments)


def latency_row(latencies: list[float], wall: float) -> dict[str, Any]:
    """Percentiles, requests per second and the samples themselves (for the histograms)."""
    return {**percentiles(latencies), "rps": round(len(latencies) / wall, 1), "latencies": latencies}


def front_call(stack: RunningStack) -> Callable[[int], None]:
    """One sync idempotent echo through the API front (a new Idempotency-Key each)."""
    client = httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=120,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )

    def call(i: int) -> None:
        response = client.post(
            "/v1/commands/echo", json={"message": f"bench {i}"}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        if response.status_code != 200:
            raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

    return call


def through_api(stack: RunningStack, requests: int, concurrency: int, environments: int = 0) -> dict[str, Any]:
    """Sync idempotent echo through the API front (`environments`: warm that many first)."""
    call = front_call(stack)
    warm(call, max(environments, concurrency))
    return latency_row(*run_load(call, requests, concurrency))


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
    """Invoke a pool directly (no front, no authorizer) with echo events, every environment warmed first."""

    def call(i: int) -> None:
        result = pool.invoke(proxy_event(i))
        if result.function_error or result.json().get("statusCode") != 200:
            raise RuntimeError(f"unexpected answer: {result.payload[:300]!r}")

    warm(call, max(pool.size, concurrency))
    return latency_row(*run_load(call, requests, concurrency))


def _run_command_records(log_dir: Path, prefix: str, since: dict[Path, int] | None = None) -> list[dict[str, Any]]:
    """The `aws calls` log records of `POST /v1/commands/{name}` requests (after `since`: offsets per log)."""
    records = []
    for log in log_dir.glob(f"{prefix}-*.log"):
        with log.open("rb") as handle:
            handle.seek((since or {}).get(log, 0))
            text = handle.read().decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("{") and '"aws calls"' in line:
                record = json.loads(line)
                if record.get("resource") == "POST /v1/commands/{name}":
                    records.append(record)
    return records


def dynamodb_calls(log_dir: Path, prefix: str, since: dict[Path, int] | None = None) -> dict[int, int]:
    """How many requests made how many DynamoDB calls."""
    records = _run_command_records(log_dir, prefix, since)
    return dict(sorted(Counter(int(r["dynamodb_calls"]) for r in records).items()))


def call_breakdown(log_dir: Path, prefix: str, since: dict[Path, int] | None = None) -> dict[str, float]:
    """Average calls per request by operation."""
    records = _run_command_records(log_dir, prefix, since)
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


# The bare handler's DynamoDB calls per request (bench/bare_handler/app.py: one rate-limit UpdateItem, the
# idempotency claim and completion, the execution record's put and update).
BARE_DYNAMODB_CALLS = 5


def measure(
    stack: RunningStack,
    workdir: Path,
    *,
    requests: int,
    clients: Sequence[int] = CLIENTS,
    direct_clients: Sequence[int] = DIRECT_CLIENTS,
    pool_size: int = POOL_SIZE,
    progress: Tick = silent,
) -> dict[str, Any]:
    """Every scenario against a running stack (its api function pool has `pool_size` environments)."""
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "requests": requests,
        "pool": pool_size,
        "latency": {FRONT: {}},
    }
    log_offsets = {log: log.stat().st_size for log in stack.log_dir.glob("ApiFunction-*.log")}
    for c in clients:
        n = max(requests, c)  # every client makes a request at least
        progress(f"{BENCHMARK}: {n} echo through the front, {c} client(s)")
        figures["latency"][FRONT][c] = through_api(stack, n, c, environments=pool_size)
    figures["dynamodb_calls"] = dynamodb_calls(stack.log_dir, "ApiFunction", log_offsets)
    figures["call_breakdown"] = call_breakdown(stack.log_dir, "ApiFunction", log_offsets)
    takes, retried = rate_limit_retries(stack.log_dir, "ApiFunction")
    figures["rate_limit_retries"] = f"{retried} of {takes} ({100 * retried / max(1, takes):.1f} %)"
    progress(f"{BENCHMARK}: starting {pool_size} direct environments of the api function and the bare handler")
    api, bare = runtimes(stack)
    direct_logs = workdir / "direct"
    direct_logs.mkdir(exist_ok=True)
    pools = {
        API_DIRECT: direct_pool(api, pool_size, direct_logs),
        BARE_DIRECT: direct_pool(bare, pool_size, direct_logs),
    }
    try:
        for name, pool in pools.items():
            figures["latency"][name] = {}
            for c in direct_clients:
                progress(f"{BENCHMARK}: {requests} echo, {name}, {c} client(s)")
                figures["latency"][name][c] = direct(pool, requests, c)
    finally:
        for pool in pools.values():
            pool.stop()
    layer, bare_rows = figures["latency"][API_DIRECT], figures["latency"][BARE_DIRECT]
    figures["layer_cost"] = {
        c: {p: round(layer[c][p] / bare_rows[c][p], 2) for p in ("p50", "p95", "p99")} for c in direct_clients
    }
    return figures


def headline(figures: dict[str, Any]) -> list[Figure]:
    """The command path's figures, each against a baseline of the same run."""
    front, layer, bare = (figures["latency"][k] for k in (FRONT, API_DIRECT, BARE_DIRECT))
    out: list[Figure] = []
    for c, row in front.items():
        if c in bare:
            out.append(
                Figure(
                    BENCHMARK,
                    f"echo p95 through the front, {c} client(s)",
                    row["p95"],
                    "ms",
                    f"bare handler p95, direct, {c} client(s)",
                    bare[c]["p95"],
                    f"{row['n']} sync idempotent echo, pool warmed first; front = API front + cached authorizer"
                    " + api function",
                )
            )
    widest = max(front)
    below = max((c for c in front if c < widest), default=None)
    if below is not None:
        out.append(
            Figure(
                BENCHMARK,
                f"echo req/s through the front, {widest} clients",
                front[widest]["rps"],
                "req/s",
                f"the same at {below} clients",
                front[below]["rps"],
                f"{front[widest]['n']} and {front[below]['n']} requests; {widest} clients on {figures['pool']}"
                " environments queue at the front",
            )
        )
    for c, row in layer.items():
        out.append(
            Figure(
                BENCHMARK,
                f"layer cost: api function p95, direct, {c} client(s)",
                row["p95"],
                "ms",
                f"bare handler p95, direct, {c} client(s)",
                bare[c]["p95"],
                "both invoked in the Lambda emulator with the same echo event; the bare handler makes the same"
                " AWS calls with plain boto3",
            )
        )
    calls = figures["dynamodb_calls"]
    if calls:
        out.append(
            Figure(
                BENCHMARK,
                "DynamoDB calls per echo (api function)",
                sum(k * v for k, v in calls.items()) / sum(calls.values()),
                "calls",
                "the bare handler's",
                BARE_DYNAMODB_CALLS,
                "botocore event hooks in the api function (its `aws calls` log line per request)",
            )
        )
    return out


def plot(figures: dict[str, Any], folder: Path) -> list[Path]:
    """Latency histograms (front at each client count) and the layer cost bars, as PNGs in `folder`."""
    histograms = folder / plots.COMMAND_LATENCY_PNG
    layer = folder / plots.LAYER_COST_PNG
    front = figures["latency"][FRONT]
    plots.latency_histograms({c: row["latencies"] for c, row in front.items()}, histograms)
    plots.layer_cost(
        {c: {p: row[p] for p in ("p50", "p95", "p99")} for c, row in figures["latency"][API_DIRECT].items()},
        {c: {p: row[p] for p in ("p50", "p95", "p99")} for c, row in figures["latency"][BARE_DIRECT].items()},
        layer,
    )
    return [histograms, layer]


def render(figures: dict[str, Any], images: Sequence[Path] = (), command: str = "make bench-command") -> str:
    """The benchmarks.md section (`images`: PNGs next to docs/benchmarks.md to show)."""
    lines = [
        SECTION,
        "",
        f"Measured {figures['when']} on {figures['machine']} by `{command}` (bench/run.py), {figures['pool']}",
        "environments per function, each warmed before it is measured; moto stands in for DynamoDB and SQS on",
        "loopback, so absolute latencies are this machine's, not AWS's: the call counts and the ratio to the",
        "bare handler are what carry over.",
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
        *image_lines(images),
    ]
    return "\n".join(lines)


def image_lines(images: Sequence[Path]) -> list[str]:
    """Markdown image lines for the PNGs that live in docs/img/ (plots drawn elsewhere are not linked)."""
    return [
        f"![{path.stem.replace('-', ' ')}](img/{path.name})\n"
        for path in images
        if path.parent.resolve() == IMAGES.resolve()
    ]


def write_section(section: str, title: str = SECTION) -> None:
    """Replace one benchmark's section of docs/benchmarks.md (between its markers), keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    RESULTS.write_text(replace_marked(text, slug(title), section).rstrip("\n") + "\n")


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
    """Run every scenario on a stack of its own and print (or write) the results."""
    parser = argparse.ArgumentParser(prog="bench.run", description="Command path benchmark (see the module doc).")
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    parser.add_argument("--pool-size", type=int, default=POOL_SIZE, help="environments per function")
    add_write_docs(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cmdgate-bench-") as tmp:
        workdir = Path(tmp)
        with launch(workdir, admin_key=ADMIN_KEY, pool_size=args.pool_size, params=("CommandPacks=builtin",)) as stack:
            figures = measure(stack, workdir, requests=args.requests, pool_size=args.pool_size, progress=print)
    images = plot(figures, IMAGES) if args.write_docs and state_plots.available() else []
    report(render(figures, images), SECTION, write_docs=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
