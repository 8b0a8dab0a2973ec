"""Async commands at scale on the local stack: drain rate beside moto's ceiling, and outcomes of a failing mix.

    make bench-async                          # 1,000 of each; print the figures
    make bench-async ARGS="--quick"           # 100 of each (a minute or two)
    make bench-async ARGS="--write-docs"      # and replace this benchmark's section of docs/benchmarks.md
    make bench                                # every benchmark, this one included (bench/suite.py)

Three phases against one stack with the template's own queue timers (visibility 180 s, MaxReceiveCount 3):

1. moto's call rate: a few threads issue a mix of the calls executions make (consistent GetItem,
   UpdateItem, PutItem, a two-item TransactWriteItems, SendMessage) for a few seconds; moto serves one
   call at a time (cmdgate_local.moto_endpoint), so this is the rate every function shares.
2. Drain: N async `echo` commands queued through the API front by 8 clients while the worker's event
   source mapping is paused (POST /_cmdgate/event-sources), then the mapping is resumed; the drain
   rate is N over the time from the resume to the last `finished_at`. AWS calls per execution are
   counted by the moto endpoint, per function access key, apart for queueing and draining (SQS long
   polls apart: they do not hold moto's lock). The ceiling is moto's rate divided by the calls that
   draining one execution costs; queueing and the end-to-end rate are reported beside it.
3. Outcomes: N async `count` commands, each on its own counter - 10 % failing transiently once after
   counting, 2 % failing permanently after counting, 1 % failing transiently every time (exhausting
   MaxReceiveCount) - must end succeeded / failed / dead_lettered as expected, none lost, and every
   counter at exactly 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx

from bench import plots, state_plots
from bench.report import Figure, Tick, silent
from bench.run import IMAGES, add_write_docs, image_lines, report
from cmdgate_local.launcher import RunningStack, launch
from cmdgate_local.moto_endpoint import CALLS_PATH, set_event_sources
from cmdgate_local.stack import LOCAL_CREDENTIALS

ADMIN_KEY = "cg_bench_admin_key"
SECTION = "## Async commands: drain rate, calls per execution, outcomes of a failing mix"
BENCHMARK = "async commands"
DRAIN_GOAL = 0.8  # of the ceiling moto's call rate allows
ASYNC = {"Prefer": "respond-async"}
CLIENTS = 8
LONG_POLLS = frozenset({"sqs:ReceiveMessage"})
refusals: Counter[int] = Counter()  # submissions answered other than 202, by status (retried)


def aws(stack: RunningStack, service: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).client(service, endpoint_url=stack.state["moto_url"])


def resource(stack: RunningStack, logical_id: str) -> str:
    return str(stack.state["resources"][logical_id]["Ref"])


# -- 1. moto's call rate -----------------------------------------------------------------------


def moto_call_rate(stack: RunningStack, seconds: float, threads: int = 4) -> float:
    """Calls per second moto serves of a mix like an execution's."""
    table = resource(stack, "ControlTable")
    queue = aws(stack, "sqs").create_queue(QueueName=f"bench-calibration-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    # Clients first: building one takes longer than many calls, and must not count.
    clients = [(aws(stack, "dynamodb"), aws(stack, "sqs")) for _ in range(threads)]
    counts: list[int] = []
    go = threading.Barrier(threads + 1)
    stop = [0.0]

    def run(worker: int) -> None:
        dynamodb, sqs = clients[worker]
        made = 0
        go.wait()
        while time.monotonic() < stop[0]:
            key = {"pk": {"S": f"bench#calibration#{worker}#{made % 50}"}}
            dynamodb.put_item(TableName=table, Item={**key, "n": {"N": "0"}})
            dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)
            dynamodb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {"pk": {"S": f"{key['pk']['S']}#t{i}"}}}} for i in range(2)
                ]
            )
            sqs.send_message(QueueUrl=queue, MessageBody="x")
            made += 5
        counts.append(made)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    started = time.monotonic()
    stop[0] = started + seconds
    go.wait()
    for thread in workers:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


# -- calls recorded by the moto endpoint ---------------------------------------------------------


EVENT_SOURCE = "event source mappings"
# What the local event source mappings do beside their long polls (signed with the local key, as
# nothing else this benchmark runs does): on AWS, Lambda's pollers make these calls.
EVENT_SOURCE_ACTIONS = frozenset({"sqs:DeleteMessage", "sqs:DeleteMessageBatch", "sqs:ChangeMessageVisibility"})


def function_calls(stack: RunningStack) -> Counter[tuple[str, str]]:
    """(function, action) -> calls so far, for the stack's functions' own access keys and the pollers."""
    owners = {env["AWS_ACCESS_KEY_ID"]: name for name, env in stack.state["functions"].items()}
    counted: Counter[tuple[str, str]] = Counter()
    for call in httpx.get(stack.state["moto_url"] + CALLS_PATH, timeout=30).json()["calls"]:
        owner = owners.get(call["access_key"])
        if owner is None and call["action"] in EVENT_SOURCE_ACTIONS | LONG_POLLS:
            owner = EVENT_SOURCE
        if owner is not None:
            counted[(owner, call["action"])] += int(call.get("count", 1))
    return counted


# -- submitting and waiting ------------------------------------------------------------------------


def submit(stack: RunningStack, bodies: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Queue each (command, params) through the API front; the execution ids in order."""
    local = threading.local()

    def one(item: tuple[str, dict[str, Any]]) -> str:
        if not hasattr(local, "client"):
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            local.client = httpx.Client(base_url=stack.url, headers=admin, timeout=60)
        command, params = item
        # One key per execution: a retried submission (its answer lost, or refused) queues it once.
        headers = {**ASYNC, "Idempotency-Key": uuid.uuid4().hex}
        for _ in range(20):
            answer = local.client.post(f"/v1/commands/{command}", json=params, headers=headers)
            if answer.status_code == 202:
                return str(answer.json()["execution_id"])
            refusals[answer.status_code] += 1
            if answer.status_code not in (409, 429, 500, 502, 503, 504):  # 409: its first try still in progress
                raise RuntimeError(f"{command}: {answer.status_code} {answer.text[:200]}")
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        raise RuntimeError(f"{command}: still refused after 20 tries")

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, bodies))


def records(stack: RunningStack, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The execution records of `ids` (BatchGetItem, strongly consistent)."""
    dynamodb, table = aws(stack, "dynamodb"), resource(stack, "ExecutionsTable")
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"execution_id": {"S": i}} for i in ids[start : start + 100]],
                "ConsistentRead": True,
                "ProjectionExpression": "execution_id, #s, attempts, created_at, started_at, finished_at",
                "ExpressionAttributeNames": {"#s": "status"},
            }
        }
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                found[item["execution_id"]["S"]] = item
            request = answer.get("UnprocessedKeys") or {}
    return found


FINAL = frozenset({"succeeded", "failed", "dead_lettered", "cancelled"})


def wait_ended(stack: RunningStack, ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Poll (every 2 s, so the polling costs moto little) until every execution has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = records(stack, ids)
        open_ = [i for i in ids if found.get(i, {}).get("status", {}).get("S") not in FINAL]
        if not open_ or time.monotonic() > deadline:
            return found
        time.sleep(2.0)


def epoch(item: dict[str, Any], field: str) -> float:
    return datetime.fromisoformat(item[field]["S"].replace("Z", "+00:00")).timestamp()


# -- 2. drain ------------------------------------------------------------------------------------


def event_sources(stack: RunningStack, function: str, enabled: bool) -> None:
    """Pause or resume a function's event source mappings (the local stack's UpdateEventSourceMapping)."""
    set_event_sources(stack.state["moto_url"], function, enabled)


def split_calls(calls: Counter[tuple[str, str]], n: int) -> dict[str, Any]:
    """Calls per execution by function and action; long polls apart (they do not hold moto's lock)."""
    per_function: Counter[str] = Counter()
    long_polls = 0
    for (function, action), count in calls.items():
        if action in LONG_POLLS:
            long_polls += count
        else:
            per_function[function] += count
    return {
        "calls_per_execution": sum(per_function.values()) / n,
        "per_function": {f: round(c / n, 2) for f, c in sorted(per_function.items())},
        "actions": {f"{f} {a}": round(c / n, 2) for (f, a), c in sorted(calls.items()) if a not in LONG_POLLS},
        "long_polls_per_execution": round(long_polls / n, 2),
    }


def drain(stack: RunningStack, n: int) -> dict[str, Any]:
    """Queue a backlog of `n` async echo with the worker's mapping paused, then time the workers draining it.

    The two halves are measured apart: submitting is the API path (front, authorizer, api function),
    draining is the worker, the event processor and the mappings, and on 2 cores the first would
    otherwise set the pace of the second.
    """
    event_sources(stack, "WorkerFunction", enabled=False)
    try:
        before = function_calls(stack)
        submitted_at = time.time()
        ids = submit(stack, [("echo", {"message": f"drain {i}"}) for i in range(n)])
        submitted_s = time.time() - submitted_at
        queued = function_calls(stack)
    finally:
        event_sources(stack, "WorkerFunction", enabled=True)
    resumed_at = time.time()
    found = wait_ended(stack, ids, timeout_s=max(300.0, n * 1.0))
    drained = function_calls(stack)
    succeeded = [found[i] for i in ids if found.get(i, {}).get("status", {}).get("S") == "succeeded"]
    last = max(epoch(r, "finished_at") for r in succeeded)
    first_start = min(epoch(r, "started_at") for r in succeeded)
    ended = [r for r in found.values() if "finished_at" in r]
    created = [r for r in found.values() if "created_at" in r]
    api_side, drain_side = split_calls(queued - before, n), split_calls(drained - queued, n)
    return {
        "n": n,
        "succeeded": len(succeeded),
        "submit_s": round(submitted_s, 1),
        "submit_rate": n / submitted_s,
        "drain_s": round(last - resumed_at, 1),
        "rate": n / (last - resumed_at),
        "worker_rate": n / (last - first_start),
        "end_to_end_rate": n / (last - submitted_at),
        "api": api_side,  # queueing: API front, authorizer, api function
        **drain_side,  # draining: worker, event processor, mappings (what the ceiling divides by)
        # For the plot: seconds since the first submission of each record's creation and end.
        "submitted_s": sorted(round(epoch(r, "created_at") - submitted_at, 3) for r in created),
        "finished_s": sorted(round(epoch(r, "finished_at") - submitted_at, 3) for r in ended),
    }


# -- 3. a failing mix ------------------------------------------------------------------------------


def mix(n: int) -> list[tuple[str, dict[str, Any], str, int]]:
    """(key, params, expected status, expected attempts) of each execution."""
    plan = []
    run = uuid.uuid4().hex[:8]
    for i in range(n):
        key = f"bench-{run}-{i}"
        if i % 100 < 10:
            plan.append((key, {"key": key, "fail_attempts": 1}, "succeeded", 2))
        elif i % 100 < 12:
            plan.append((key, {"key": key, "fail_permanently": True}, "failed", 1))
        elif i % 100 < 13:
            plan.append((key, {"key": key, "fail_attempts": 100}, "dead_lettered", 3))
        else:
            plan.append((key, {"key": key}, "succeeded", 1))
    return plan


def counters(stack: RunningStack, keys: list[str]) -> dict[str, int]:
    dynamodb, table = aws(stack, "dynamodb"), resource(stack, "ControlTable")
    found: dict[str, int] = {}
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {
            table: {"Keys": [{"pk": {"S": f"count#{k}"}} for k in keys[start : start + 100]], "ConsistentRead": True}
        }
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                found[item["pk"]["S"].removeprefix("count#")] = int(item["executions"]["N"])
            request = answer.get("UnprocessedKeys") or {}
    return found


def outcomes(stack: RunningStack, n: int) -> dict[str, Any]:
    plan = mix(n)
    started = time.time()
    ids = submit(stack, [("count", params) for _, params, _, _ in plan])
    found = wait_ended(stack, ids, timeout_s=max(600.0, n * 1.5))
    took = time.time() - started
    counted = counters(stack, [key for key, _, _, _ in plan])
    expected: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    wrong: list[str] = []
    for execution_id, (key, _, status, attempts) in zip(ids, plan, strict=True):
        expected[status] += 1
        item = found.get(execution_id)
        got = item["status"]["S"] if item else "lost"
        ended[got] += 1
        got_attempts = int(item["attempts"]["N"]) if item and "attempts" in item else 0
        if got != status or got_attempts != attempts or counted.get(key) != 1:
            wrong.append(f"{execution_id}: {got} after {got_attempts} attempts, counted {counted.get(key)}")
    return {
        "n": n,
        "expected": dict(expected),
        "ended": dict(ended),
        "lost": n - len(found),
        "effects_once": sum(1 for key, _, _, _ in plan if counted.get(key) == 1),
        "wrong": wrong[:10],
        "wrong_count": len(wrong),
        "took_s": round(took, 1),
    }


# -- report ------------------------------------------------------------------------------------


def ceiling(figures: dict[str, Any]) -> float:
    """Executions/s moto's call rate allows at the measured calls per execution."""
    return float(figures["moto_rate"]) / float(figures["drain"]["calls_per_execution"])


def headline(figures: dict[str, Any]) -> list[Figure]:
    """The drain rate against the same run's ceiling; the failing mix's effects and losses against its size."""
    d, o = figures["drain"], figures["outcomes"]
    how_mix = "async `count`: 10 % fail once, 2 % permanently, 1 % always; counters read back"
    return [
        Figure(
            BENCHMARK,
            f"drain rate of {d['n']} async echo",
            d["rate"],
            "exec/s",
            "ceiling: moto's call rate / AWS calls per execution",
            ceiling(figures),
            f"a backlog queued by {CLIENTS} clients with the worker's mapping paused; resume to last `finished_at`",
            goal_min=DRAIN_GOAL,
        ),
        Figure(
            BENCHMARK,
            f"failing mix: effects exactly once, {o['n']} executions",
            o["effects_once"],
            "",
            "executions submitted",
            o["n"],
            how_mix,
            goal_min=1.0,
        ),
        Figure(
            BENCHMARK,
            "failing mix: executions lost or not as expected",
            o["lost"] + o["wrong_count"],
            "",
            "executions submitted",
            o["n"],
            how_mix,
            goal_max=0.0,
        ),
    ]


def plot(figures: dict[str, Any], folder: Path) -> list[Path]:
    """The drain over time beside the ceiling's slope."""
    path = folder / plots.ASYNC_DRAIN_PNG
    d = figures["drain"]
    plots.async_drain(d["submitted_s"], d["finished_s"], ceiling(figures), path)
    return [path]


def render(figures: dict[str, Any], images: list[Path] | None = None, command: str = "make bench-async") -> str:
    d, o = figures["drain"], figures["outcomes"]
    ceiling_ = ceiling(figures)
    api = d["api"]
    both = d["calls_per_execution"] + api["calls_per_execution"]
    lines = [
        SECTION,
        "",
        f"Measured {figures['when']} on {figures['machine']} by `{command}` (bench/async_drain.py), one",
        f"local stack, {figures['pool']} instances per function, the template's own queue timers, load average",
        f"{figures.get('load', '?')} at the start. moto serves one call at a time, so its call rate bounds every",
        "function together. The drain is timed on a backlog: the N commands are queued with the worker's event",
        "source mapping paused, then it is resumed and the workers (with the event processor and the mappings'",
        "deletes) drain the queue alone; the ceiling is moto's rate divided by the AWS calls that draining one",
        "execution costs (SQS long polls apart). Queueing (API front, authorizer, api function) is timed apart.",
        "",
        f"- moto's call rate (a mix like an execution's, 4 threads): **{figures['moto_rate']:.0f} calls/s**",
        f"- AWS calls to drain one async `echo`: **{d['calls_per_execution']:.1f}** "
        f"(by function: {', '.join(f'{k} {v}' for k, v in d['per_function'].items())}); "
        f"long polls {d['long_polls_per_execution']} per execution",
        f"- ceiling: {figures['moto_rate']:.0f} / {d['calls_per_execution']:.1f} = **{ceiling_:.1f} executions/s**",
        f"- drain of a backlog of {d['n']} async `echo` (all ended {d['drain_s']} s after the mapping was resumed): "
        f"**{d['rate']:.1f} executions/s = {100 * d['rate'] / ceiling_:.0f} % of the ceiling** (first start to "
        f"last finish: {d['worker_rate']:.1f}/s)",
        f"- queueing them through the API front (8 clients): {d['submit_s']} s, {d['submit_rate']:.1f} requests/s, "
        f"{api['calls_per_execution']:.1f} AWS calls each "
        f"({', '.join(f'{k} {v}' for k, v in api['per_function'].items())}); queueing and draining together: "
        f"{both:.1f} calls per execution, {d['end_to_end_rate']:.1f} executions/s from the first submission to the "
        f"last finish = {100 * d['end_to_end_rate'] / (figures['moto_rate'] / both):.0f} % of moto's rate / {both:.1f}",
        f"- {o['n']} async `count`, 10 % failing transiently once, 2 % permanently, 1 % every time: expected "
        f"{o['expected']}, ended {o['ended']}, lost {o['lost']}, effects exactly once {o['effects_once']}/{o['n']}, "
        f"not as expected {o['wrong_count']} ({o['took_s']} s)",
        f"- submissions answered other than 202 and retried (same Idempotency-Key): {figures['refusals'] or 'none'}",
        *bound_note(d, ceiling_),
        "",
        *image_lines(images or []),
        "Calls per execution by function and action:",
        "",
        "| function action | calls |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in {**api["actions"], **d["actions"]}.items()],
        "",
        "On AWS the same design scales with worker concurrency. An execution is one message on a standard",
        "queue (no throughput limit) and single-item reads and writes keyed by its own execution id, spread",
        "over the table's partitions; no lock or sequence is shared between executions. Throughput therefore",
        "grows with the number of concurrent workers - the worker's event source mapping `MaximumConcurrency`",
        "and reserved concurrency, and the account's Lambda concurrency - each worker adding about",
        "1 / (command time + a few ms of calls) executions/s. The one item every execution of a command",
        "touches is that command's statistics (`stats#<command>`, an atomic ADD by the event processor):",
        "DynamoDB serves about 1,000 writes/s to one item, so a single command tops out there unless its",
        "counters are sharded (not built); different commands do not share it. Locally one moto process",
        "serves every call in turn, which is why the figure is stated against its ceiling.",
        "",
    ]
    return "\n".join(lines)


def bound_note(d: dict[str, Any], ceiling: float) -> list[str]:
    """What bounded the drain."""
    if d["rate"] >= 0.8 * ceiling:
        return ["- the drain reaches the 80 % goal: moto's one-call-at-a-time service is what bounds it"]
    return [
        f"- below the 80 % goal: moto was busy {100 * d['rate'] / ceiling:.0f} % of the drain, the rest is the "
        "functions' own time (Python in the emulator processes on this machine's cores) between their calls"
    ]


def measure(stack: RunningStack, n: int, pool: int, progress: Tick = silent) -> dict[str, Any]:
    """The three phases against a running stack whose functions have `pool` environments each."""
    refusals.clear()
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "pool": pool,
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    progress(f"{BENCHMARK}: warming {pool * 2} async echo")
    warm = submit(stack, [("echo", {"message": "warm"}) for _ in range(pool * 2)])
    wait_ended(stack, warm, timeout_s=120)  # every instance started, nothing left in flight
    progress(f"{BENCHMARK}: moto's call rate")
    figures["moto_rate"] = moto_call_rate(stack, seconds=5.0 if n >= 500 else 3.0 if n >= 100 else 2.0)
    print(f"moto: {figures['moto_rate']:.0f} calls/s", flush=True)
    progress(f"{BENCHMARK}: drain of {n} async echo")
    figures["drain"] = drain(stack, n)
    shown = {k: v for k, v in figures["drain"].items() if k not in ("submitted_s", "finished_s")}
    print(f"drain: {json.dumps(shown)}", flush=True)
    progress(f"{BENCHMARK}: {n} async count, a failing mix")
    figures["outcomes"] = outcomes(stack, n)
    figures["refusals"] = dict(refusals)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100 executions per phase instead of 1,000")
    parser.add_argument("-n", type=int, default=None, help="executions per phase (overrides --quick)")
    parser.add_argument("--pool-size", type=int, default=4, help="instances per function")
    add_write_docs(parser)
    args = parser.parse_args(argv)
    n = args.n or (100 if args.quick else 1000)
    workdir = Path(tempfile.mkdtemp(prefix="cmdgate-bench-async-"))  # kept: the functions' logs are in it
    print(f"stack logs: {workdir / 'logs'}", flush=True)
    with launch(workdir, admin_key=ADMIN_KEY, pool_size=args.pool_size) as stack:
        figures = measure(stack, n, args.pool_size)
    images = plot(figures, IMAGES) if args.write_docs and state_plots.available() else []
    report(render(figures, images), SECTION, write_docs=args.write_docs)
    return 0 if figures["outcomes"]["wrong_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
