"""Cold starts: each function's Init Duration plus first invocation against a floor, in one run.

    make bench-cold                      # 5 cold starts per function, print the figures
    make bench-cold ARGS="--quick"       # 3 cold starts
    make bench-cold ARGS="--write-docs"  # and replace the cold-start section of docs/benchmarks.md

A cold request costs the function's init (the emulator's `INIT REPORT(durationMs: …)`) plus its first
invocation (`INVOKE RTDONE(… duration: …)`), so both are measured, each in a fresh Lambda emulator
environment started for that one invocation, with a realistic first event (events/ samples: the api
function's async `echo`, whose queued message is the worker's event, whose `command.executed`
event is the event processor's). The floor (bench/floor_handler) imports boto3 as the runtime ships it,
creates one DynamoDB client and makes one GetItem, the authorizer's first call. Functions and the
floor take turns within each round, so the machine's load falls on all of them alike: the ratio to
the floor is the figure.

Also: the first request through the API front after a cold start (the authorizer's and the api
function's cold starts in a row) against a warm one, `python -X importtime`'s costliest imports per
function, and the resilience layer's unzipped size with its five largest packages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx

from cmdgate_local.lambda_runtime import ExecutionEnvironment, FunctionRuntime, rie_binary
from cmdgate_local.launcher import ROOT, RunningStack, launch
from cmdgate_local.moto_endpoint import set_event_sources
from cmdgate_local.stack import LOCAL_CREDENTIALS, StackConfig
from cmdgate_local.template import REGION, Template, load_template

ADMIN_KEY = "cg_bench_cold_admin_key"
EVENTS = ROOT / "events"
BUILD = ROOT / ".aws-sam" / "build"
LAYER = BUILD / "ResilienceLayer" / "python"
RESULTS = ROOT / "docs" / "benchmarks.md"
PNG = "cold-start.png"
START_MARK, END_MARK = "<!-- cold-start:start -->", "<!-- cold-start:end -->"
FLOOR = "floor"
# Measured in this order within each round; the floor first.
FUNCTIONS = (
    "AuthorizerFunction",
    "ApiFunction",
    "WorkerFunction",
    "EventProcessorFunction",
    "StateSyncFunction",
    "HealerFunction",
)
SHORT = {
    "AuthorizerFunction": "authorizer",
    "ApiFunction": "api",
    "WorkerFunction": "worker",
    "EventProcessorFunction": "event_processor",
    "StateSyncFunction": "state_sync",
    "HealerFunction": "healer",
    FLOOR: FLOOR,
}
GOAL = 1.3
INIT_RE = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
INVOKE_RE = re.compile(r"INVOKE RTDONE\(status: (\w+).*?duration: ([0-9.]+)ms\)")
IMPORT_RE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")

Progress = Callable[[str], None]


def _sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


# -- first events ---------------------------------------------------------------


def authorizer_event() -> dict[str, Any]:
    """The sample REQUEST event with a valid key (the stack's admin key)."""
    event = _sample("authorizer_request.json")
    event["headers"]["Authorization"] = event["multiValueHeaders"]["Authorization"][0] = f"Bearer {ADMIN_KEY}"
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    return event


def api_event() -> dict[str, Any]:
    """The sample async `echo` (a fresh Idempotency-Key and request id), as the front passes it on."""
    event = _sample("api_run_echo_async.json")
    event["headers"]["Idempotency-Key"] = uuid.uuid4().hex
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    return event


def sqs_record(body: str, queue_arn: str, fifo_group: str | None = None) -> dict[str, Any]:
    """One SQS record in the shape of the events/ samples."""
    record = _sample("worker_sqs_batch.json")["Records"][0]
    record.update(messageId=str(uuid.uuid4()), body=body, eventSourceARN=queue_arn)
    if fifo_group is not None:
        record["attributes"].update(MessageGroupId=fifo_group, MessageDeduplicationId=uuid.uuid4().hex)
    return record


# -- one cold start --------------------------------------------------------------


def cold_figures(log: str) -> dict[str, float]:
    """Init and first-invocation durations (ms) from one environment's emulator log."""
    init = INIT_RE.search(log)
    invoke = INVOKE_RE.search(log)
    if init is None or invoke is None:
        raise RuntimeError("no INIT REPORT / INVOKE RTDONE in the emulator log:\n" + log[-2000:])
    if invoke.group(1) != "success":
        raise RuntimeError("the first invocation failed:\n" + log[-2000:])
    init_ms, invoke_ms = float(init.group(1)), float(invoke.group(2))
    return {"init_ms": init_ms, "invoke_ms": invoke_ms, "total_ms": init_ms + invoke_ms}


def cold_start(
    runtime: FunctionRuntime, event: dict[str, Any], log_dir: Path, index: int
) -> tuple[Any, dict[str, float]]:
    """Start a fresh environment, invoke it once, stop it: (its answer, its cold figures)."""
    config = StackConfig(root=ROOT)
    env = ExecutionEnvironment(runtime, index, rie_binary(config.sam_site_packages), config.runtime_python, log_dir)
    env.start()
    try:
        result = env.invoke(json.dumps(event).encode())
    finally:
        env.stop()
    if result.function_error:
        raise RuntimeError(f"{runtime.name}: function error {result.payload[:500]!r}")
    log = (log_dir / f"{runtime.name}-{index}.log").read_text(errors="replace")
    return result.json(), {**cold_figures(log), "wall_ms": result.duration_ms}


# -- the functions under the running stack ------------------------------------------


def function_runtime(stack: RunningStack, name: str, **environment: str) -> FunctionRuntime:
    """A function as the running stack runs it (its build, layers and environment), plus `environment`."""
    spec = Template(load_template(ROOT / "template.yaml")).functions()[name]
    return FunctionRuntime(
        name=name,
        handler=spec.handler,
        code_dir=BUILD / name,
        layer_dirs=tuple(BUILD / layer / "python" for layer in spec.layers),
        environment={**stack.state["functions"][name], **environment},
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
    )


def floor_runtime(stack: RunningStack) -> FunctionRuntime:
    """The floor handler, with the authorizer's table and the stack's endpoint."""
    authorizer = stack.state["functions"]["AuthorizerFunction"]
    return FunctionRuntime(
        name="FloorFunction",
        handler="app.lambda_handler",
        code_dir=ROOT / "bench" / "floor_handler",
        layer_dirs=(),
        environment={
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": stack.state["moto_url"],
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "KEYS_TABLE": authorizer["KEYS_TABLE"],
        },
        timeout_s=15,
        memory_mb=512,
    )


class Chain:
    """Queues no poller of the stack reads, so each function's output is the next one's first event:
    the api's queued execution for the worker, the worker's `command.executed` for the event processor."""

    def __init__(self, moto_url: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self._sqs = session.client("sqs", endpoint_url=moto_url)
        suffix = uuid.uuid4().hex[:8]
        self.urls = {
            kind: self._sqs.create_queue(QueueName=f"bench-cold-{kind}-{suffix}")["QueueUrl"]
            for kind in ("executions", "events")
        }
        self.arns = {
            kind: self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for kind, url in self.urls.items()
        }

    def take(self, kind: str, want: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
        """The next message on one queue that `want` accepts (others are dropped), as an SQS event."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = self._sqs.receive_message(QueueUrl=self.urls[kind], MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in answer.get("Messages", []):
                self._sqs.delete_message(QueueUrl=self.urls[kind], ReceiptHandle=message["ReceiptHandle"])
                if want(json.loads(message["Body"])):
                    return {"Records": [sqs_record(message["Body"], self.arns[kind])]}
        raise RuntimeError(f"no message on the bench {kind} queue within 30 s")


def one_round(
    stack: RunningStack, chain: Chain, state_key: str, log_dir: Path, index: int
) -> dict[str, dict[str, float]]:
    """Every function's cold start once, and the floor's, in FUNCTIONS order (floor first)."""
    figures: dict[str, dict[str, float]] = {}
    _, figures[FLOOR] = cold_start(floor_runtime(stack), {}, log_dir, index)
    answer, figures["AuthorizerFunction"] = cold_start(
        function_runtime(stack, "AuthorizerFunction"), authorizer_event(), log_dir, index
    )
    if answer.get("policyDocument", {}).get("Statement", [{}])[0].get("Effect") != "Allow":
        raise RuntimeError(f"the authorizer refused the admin key: {answer}")
    api = function_runtime(stack, "ApiFunction", EXECUTIONS_QUEUE_URL=chain.urls["executions"])
    answer, figures["ApiFunction"] = cold_start(api, api_event(), log_dir, index)
    if answer.get("statusCode") != 202:
        raise RuntimeError(f"the api function answered {answer}")
    worker = function_runtime(stack, "WorkerFunction", EVENTS_QUEUE_URL=chain.urls["events"])
    _, figures["WorkerFunction"] = cold_start(worker, chain.take("executions"), log_dir, index)
    executed = chain.take("events", lambda body: body.get("type") == "command.executed")
    processor = function_runtime(stack, "EventProcessorFunction")
    _, figures["EventProcessorFunction"] = cold_start(processor, executed, log_dir, index)
    sync_arn = "arn:aws:sqs:us-east-1:123456789012:cmdgate-StateSyncQueue.fifo"
    sync = {"Records": [sqs_record(json.dumps({"key": state_key, "version": 1}), sync_arn, state_key)]}
    synced, figures["StateSyncFunction"] = cold_start(
        function_runtime(stack, "StateSyncFunction"), sync, log_dir, index
    )
    if synced is not None and synced.get("batchItemFailures"):
        raise RuntimeError(f"the state sync did not write the round's key: {synced}")
    healer = function_runtime(stack, "HealerFunction")
    _, figures["HealerFunction"] = cold_start(healer, _sample("healer_schedule.json"), log_dir, index)
    return figures


# -- through the front ------------------------------------------------------------------


def front_request(stack: RunningStack) -> tuple[float, int]:
    """One sync `echo` through the API front: (ms, status)."""
    started = time.monotonic()
    answer = httpx.post(
        f"{stack.url}/v1/commands/echo",
        json={"message": "cold"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=60,
    )
    return round((time.monotonic() - started) * 1000, 1), answer.status_code


COLD_PARAMS = ("StateGistLingerS=0",)


def dirty_state_key(stack: RunningStack) -> str:
    """A new state key, not yet in its gist: the state sync's first event in a round (its mapping is paused)."""
    key = f"bench-cold-{uuid.uuid4().hex[:8]}"
    httpx.put(
        f"{stack.url}/v1/state/{key}",
        json={"n": 1},
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "If-None-Match": "*"},
        timeout=60,
    ).raise_for_status()
    return key


@contextmanager
def fresh_stack(workdir: Path) -> Iterator[RunningStack]:
    """A local stack of its own with one environment per function, none started yet (all cold)."""
    # No linger: the state sync's first event is a due key, so its cold start writes a gist.
    with launch(workdir, admin_key=ADMIN_KEY, pool_size=1, authorizer_ttl_s=0, params=COLD_PARAMS) as stack:
        yield stack


def front_cold(stack: RunningStack) -> dict[str, Any]:
    """The stack's first request (authorizer and api function cold) and, after it, warm ones."""
    cold_ms, cold_status = front_request(stack)
    warm = [front_request(stack) for _ in range(5)]
    if cold_status != 200 or any(status != 200 for _, status in warm):
        raise RuntimeError(f"echo through the front answered {cold_status}, {[s for _, s in warm]}")
    return {"cold_ms": cold_ms, "warm_ms": statistics.median(ms for ms, _ in warm)}


# -- what the imports cost ----------------------------------------------------------------


def import_profile(runtime: FunctionRuntime, top: int = 8) -> dict[str, Any]:
    """`python -X importtime -c "import app"` as the emulator runs it: the handler module's total, its
    costliest direct imports (cumulative) and the modules with the most time of their own."""
    python = StackConfig(root=ROOT).runtime_python
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join([str(runtime.code_dir), *(str(d) for d in runtime.layer_dirs)]),
        "AWS_LAMBDA_FUNCTION_NAME": runtime.name,
        **runtime.environment,
    }
    done = subprocess.run(  # the runtime's python, fixed argv  # nosec B603
        [str(python), "-X", "importtime", "-c", "import app"],
        cwd=runtime.code_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = IMPORT_RE.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            rows.append((name, len(indent) // 2, int(self_us) / 1000, int(cumulative_us) / 1000))
    if done.returncode != 0 or not rows:
        raise RuntimeError(f"{runtime.name}: import failed: {done.stderr[-2000:]}")
    total = next((cumulative for name, depth, _, cumulative in rows if name == "app" and depth == 0), 0.0)
    children = sorted((r for r in rows if r[1] == 1), key=lambda r: -r[3])[:top]
    own = sorted(rows, key=lambda r: -r[2])[:top]
    return {
        "total_ms": round(total, 1),
        "direct": [(name, round(ms, 1)) for name, _, _, ms in children],
        "self": [(name, round(ms, 1)) for name, _, ms, _ in own],
    }


# -- the layer ----------------------------------------------------------------------------


def layer_figures(layer: Path = LAYER) -> dict[str, Any]:
    """The built resilience layer's unzipped size and its five largest packages (MiB)."""

    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size

    if not layer.is_dir():
        raise RuntimeError(f"{layer} is missing: run `make build`")
    largest = sorted(((size(p), p.name) for p in layer.iterdir() if p.is_dir()), reverse=True)[:5]
    return {
        "mib": round(size(layer) / 2**20, 1),
        "budget_mib": 35,
        "largest": [(name, round(bytes_ / 2**20, 1)) for bytes_, name in largest],
        "botocore_or_boto3": sorted(
            p.name for p in layer.iterdir() if p.name.split("-")[0].lower() in {"boto3", "botocore", "s3transfer"}
        ),
    }


# -- the whole run --------------------------------------------------------------------------


def medians(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per function: the median of each figure over the rounds, and the total's ratio to the floor's."""
    names = list(rounds[0])
    out: dict[str, dict[str, float]] = {}
    for name in names:
        out[name] = {
            key: round(statistics.median(r[name][key] for r in rounds), 1)
            for key in ("init_ms", "invoke_ms", "total_ms", "wall_ms")
        }
    floor = out[FLOOR]["total_ms"]
    for name in names:
        out[name]["ratio"] = round(out[name]["total_ms"] / floor, 2)
        # The ratio of each round's total to that round's floor, whose median is less sensitive to load swings.
        out[name]["paired_ratio"] = round(
            statistics.median(r[name]["total_ms"] / r[FLOOR]["total_ms"] for r in rounds), 2
        )
    return out


def measure(quick: bool, progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark on a stack of its own (3 cold starts per function when quick, else 5)."""
    note = progress or (lambda _: None)
    cold_starts = 3 if quick else 5
    load_before = os.getloadavg()
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "cold_starts": cold_starts,
        "layer": layer_figures(),
    }
    with tempfile.TemporaryDirectory(prefix="cmdgate-bench-cold-") as tmp:
        workdir = Path(tmp)
        note("starting a local stack")
        with fresh_stack(workdir / "stack") as stack:
            note("first request through the front (authorizer and api function cold)")
            # The floor's cold start just before, as the load of that moment's yardstick.
            _, floor_now = cold_start(floor_runtime(stack), {}, workdir, 99)
            figures["front"] = {**front_cold(stack), "floor_ms": round(floor_now["total_ms"], 1)}
            # The stack's own state sync would write the round's key before the cold environment does.
            set_event_sources(stack.state["moto_url"], "StateSyncFunction", enabled=False)
            chain = Chain(stack.state["moto_url"])
            log_dir = workdir / "cold"
            log_dir.mkdir()
            rounds = []
            for index in range(cold_starts):
                note(f"cold starts, round {index + 1} of {cold_starts}")
                rounds.append(one_round(stack, chain, dirty_state_key(stack), log_dir, index))
            figures["rounds"] = rounds
            figures["medians"] = medians(rounds)
            if not quick:  # about 40 s of whole-interpreter runs: the full run's diagnosis, not a figure
                note("import profiles")
                figures["imports"] = {
                    name: import_profile(function_runtime(stack, name)) for name in (FLOOR, *FUNCTIONS) if name != FLOOR
                }
                figures["imports"][FLOOR] = import_profile(floor_runtime(stack))
    figures["load"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    return figures


# -- output -----------------------------------------------------------------------------------


def render(figures: dict[str, Any], plots: list[Path] | None = None) -> str:
    """The cold-start section of docs/benchmarks.md, between its markers."""
    med = figures["medians"]
    load = figures["load"]
    lines = [
        START_MARK,
        "## Cold starts: init + first invocation against the floor",
        "",
        f"Measured {figures['when']} on {figures['machine']} by `make bench-cold` (bench/cold_start.py):",
        f"{figures['cold_starts']} cold starts per function, each a fresh Lambda emulator environment invoked once",
        "with a realistic first event; the floor (bench/floor_handler: `import boto3`, one DynamoDB client,",
        "one GetItem) takes its turn in every round. Load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} before the run, {load[3]:.1f} after (2 cores shared):",
        "absolute times are this machine's, the ratio to the floor in the same run is the figure.",
        "",
        "The goal column judges the per-round ratio (each round's total over that round's floor). Only the",
        "authorizer's first invocation makes exactly the floor's one call; the others do their first event's work",
        "(the worker runs `echo`, the healer a whole pass), so their init alone is also set against the floor's.",
        "",
        "| function | init ms | init x floor | first invoke ms | init + invoke ms | x floor | x floor (per round) "
        "| goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in med.items():
        goal = "" if name == FLOOR else ("met" if row["paired_ratio"] <= GOAL else "missed")
        init_ratio = round(row["init_ms"] / med[FLOOR]["init_ms"], 2)
        lines.append(
            f"| {SHORT[name]} | {row['init_ms']} | {init_ratio} | {row['invoke_ms']} | {row['total_ms']} | "
            f"{row['ratio']} | {row['paired_ratio']} | {'' if name == FLOOR else f'<= {GOAL} {goal}'} |"
        )
    front = figures["front"]
    lines += [
        "",
        "Through the API front, the first request after a cold start (sync `echo`: the authorizer's and the api",
        f"function's cold starts in a row, one sample on the benchmark's own fresh stack): **{front['cold_ms']} ms**"
        f" = {round(front['cold_ms'] / front['floor_ms'], 2)}x the floor's cold start measured just before it "
        f"({front['floor_ms']} ms; two cold starts in a row are at least 2x); warm, the median of the next 5: "
        f"{front['warm_ms']} ms.",
        "",
    ]
    layer = figures["layer"]
    lines += [
        f"Resilience layer: **{layer['mib']} MiB unzipped** (budget {layer['budget_mib']} MiB), no boto3 or botocore "
        f"of its own ({layer['botocore_or_boto3'] or 'none found'}); largest packages: "
        + ", ".join(f"{name} {mib} MiB" for name, mib in layer["largest"])
        + ".",
    ]
    if figures.get("imports"):
        lines += [
            "",
            "Costliest imports (`python -X importtime -c 'import app'` with the runtime's python and the layers,",
            "ms, cumulative for the handler module's direct imports):",
            "",
        ]
    for name, profile in figures.get("imports", {}).items():
        direct = ", ".join(f"{mod} {ms}" for mod, ms in profile["direct"][:6])
        lines.append(f"- {SHORT[name]}: {profile['total_ms']} ms in all; {direct}")
    for path in plots or []:
        if path.parent.resolve() == (RESULTS.parent / "img").resolve():  # plots drawn elsewhere are not linked
            lines += ["", f"![Cold start per function against the floor](img/{path.name})"]
    lines += ["", END_MARK]
    return "\n".join(lines)


def plot(figures: dict[str, Any], out_dir: Path) -> list[Path]:
    """A bar chart of init + first invocation per function beside the floor (docs/img/cold-start.png)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    med = figures["medians"]
    names = list(med)
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    labels = [SHORT[n] for n in names]
    init = [med[n]["init_ms"] for n in names]
    invoke = [med[n]["invoke_ms"] for n in names]
    axes.bar(labels, init, label="init", color="#4c72b0")
    axes.bar(labels, invoke, bottom=init, label="first invocation", color="#dd8452")
    floor = med[FLOOR]["total_ms"]
    axes.axhline(floor, color="black", linewidth=1, label="floor")
    axes.axhline(floor * GOAL, color="black", linewidth=1, linestyle="--", label=f"goal ({GOAL}x floor)")
    for i, n in enumerate(names):
        axes.annotate(f"{med[n]['ratio']}x", (i, med[n]["total_ms"]), ha="center", va="bottom", fontsize=8)
    axes.set_ylabel("ms (median)")
    axes.set_title(f"Cold start: init + first invocation, median of {figures['cold_starts']}")
    axes.legend(fontsize=8)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PNG
    figure.savefig(path)
    return [path]


def write_docs(section: str, results: Path = RESULTS) -> None:
    """Replace the text between the cold-start markers of docs/benchmarks.md (appended when absent)."""
    text = results.read_text() if results.exists() else "# Benchmarks\n"
    if START_MARK in text and END_MARK in text:
        head, _, rest = text.partition(START_MARK)
        _, _, tail = rest.partition(END_MARK)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and with --write-docs also write the docs section and the plot."""
    parser = argparse.ArgumentParser(prog="bench.cold_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 cold starts per function instead of 5")
    parser.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md's section and the plot")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures to this file")
    args = parser.parse_args(argv)
    figures = measure(args.quick, progress=lambda step: print(f"# {step}", file=sys.stderr, flush=True))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    plots = plot(figures, ROOT / "docs" / "img") if args.write_docs else []
    section = render(figures, plots)
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"wrote {RESULTS.relative_to(ROOT)} and {', '.join(str(p.relative_to(ROOT)) for p in plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
