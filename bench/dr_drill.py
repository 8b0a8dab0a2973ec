"""Disaster-recovery drill: write state, let it sync, wipe the state table, recover from the gists, verify.

    make dr-drill                         # 1,000 keys on a stack of its own; writes docs/reliability.md
    make dr-drill ARGS="--keys 200"       # a smaller run (docs are written only with --write-docs)

On the local stack: `--keys` keys in `--namespaces` namespaces are written (each a PUT), and the
rounds wait until every write is synced to its gist; then a tenth of the keys get a second version
and a twentieth are deleted, a second round gives some of those a third version (and deletes a
few of them: a tombstone after several versions), and `--legacy` keys live in format-1 gists of
their own (`state.json`, one gist each, synced twice). A tail of writes follows that the wipe
catches before their gist write (they linger `StateGistLingerS`): the recovery point.

Then every item of the state table is deleted (registers, version logs, the shard directory and
the gist file-name key: what losing the table loses), `cmdgate state recover` runs once, and each
key's register and version log are compared with what was synced: newest value, version, tombstone,
and every synced version in the history with the revision that holds it. A sample is also read
back through the API. The drill fails (exit 1) on any difference.

The same steps, smaller and confined to namespaces of their own, are the integration test
tests/integration/test_state_recovery.py (`Drill` with `namespaces_only=True`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx

from cmdgate_local.moto_endpoint import set_event_sources

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "reliability.md"
SECTION_START = "<!-- dr-drill:start -->"
SECTION_END = "<!-- dr-drill:end -->"
ADMIN_KEY = "cg_drill_admin_key"
CREATE = {"If-None-Match": "*"}
MERGE = {"Content-Type": "application/merge-patch+json"}


@dataclass
class Written:
    """What the drill wrote to one key: every version (value, deleted) and when."""

    versions: list[tuple[Any, bool]] = field(default_factory=list)
    written_at: list[float] = field(default_factory=list)
    legacy: bool = False

    def add(self, value: Any, deleted: bool) -> None:
        self.versions.append((value, deleted))
        self.written_at.append(time.time())


@dataclass
class Drill:
    """One stack's drill: its API (an admin client), its state table through moto, its Gist stand-in."""

    api: httpx.Client
    api_url: str
    admin_key: str
    dynamodb: Any
    kms: Any
    table: str
    kms_key: str
    gist_url: str
    gist_token: str  # the deployment's GitHub token: gists are listed per token
    prefix: str = field(default_factory=lambda: f"dr{uuid.uuid4().hex[:6]}")
    namespaces_only: bool = False  # wipe only the drill's namespaces (a shared test stack)
    writers: int = 4  # concurrent writing clients
    # Seed writes straight to the table with their sync message, as the API's write does (StateStore
    # commit, then FifoSyncQueue.schedule), instead of through the API: on a loaded machine the API
    # front's cold environments time out, and the drill is about the recovery, not the write path.
    sync_queue: Any = None  # a FifoSyncQueue when seeding directly
    # The stack's moto endpoint, when the drill owns the stack: the wipe then pauses the state sync
    # first (its event source mapping), so a sync landing mid-wipe cannot make "what was synced"
    # (read before the delete) stale. In a real loss nothing syncs to a table that is gone.
    moto_url: str | None = None
    written: dict[str, Written] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)

    # -- writing ---------------------------------------------------------------------------

    def namespaces(self, count: int) -> list[str]:
        return [f"{self.prefix}n{i}" for i in range(count)]

    def warm_up(self, bound_s: float = 300.0) -> None:
        """Wait until an authenticated request gets an answer of the API (not a front's 5xx)."""
        deadline = time.monotonic() + bound_s
        while self.api.get(f"/v1/state/{self.prefix}.warm-up").status_code != 404:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer within {bound_s} s")
            time.sleep(1.0)

    def seed(self, keys: int, namespaces: int, legacy: int, sync_bound_s: float) -> None:
        """Write the keys in rounds, each synced before the next, plus `legacy` format-1 keys."""
        self.warm_up()
        started = time.monotonic()
        names = [f"{ns}.k{i}" for i, ns in zip(range(keys), self._cycle(namespaces, keys), strict=True)]
        for i in range(legacy):
            self._legacy_key(f"{self.prefix}old{i}.k")
        self._parallel([(name, "put", {"key": name, "round": 1}) for name in names])
        self.wait_synced(sync_bound_s)
        rng = random.Random(7)
        picked = rng.sample(names, keys // 10 + keys // 20)
        second, deleted = picked[: keys // 10], picked[keys // 10 :]
        legacy_keys = [k for k, w in self.written.items() if w.legacy]
        self._parallel(
            [(n, "patch", {"round": 2}) for n in second + legacy_keys] + [(n, "delete", None) for n in deleted]
        )
        self.wait_synced(sync_bound_s)
        third = second[: max(1, len(second) // 2)]
        gone = third[: max(1, len(third) // 10)]
        self._parallel([(n, "patch", {"round": 3}) for n in third[len(gone) :]] + [(n, "delete", None) for n in gone])
        self.wait_synced(sync_bound_s)
        self.phases["seed_s"] = round(time.monotonic() - started, 1)

    def tail(self, updates: int, creates: int, *, queued: bool = True) -> None:
        """Writes the wipe will catch before their gist write: updates of synced keys and new keys.

        Through the API (`queued`), they linger `StateGistLingerS` before their gist write, so a wipe
        right after catches them; committed straight to the table (not `queued`), no sync message
        exists for them at all, whatever the linger (a stack with a short one, as the tests have).
        """
        live = [k for k, w in self.written.items() if not w.versions[-1][1] and not w.legacy]
        rows: list[tuple[str, str, Any]] = [(n, "patch", {"round": "tail"}) for n in random.sample(live, updates)]
        rows += [(f"{self.prefix}n0.tail{i}", "put", {"tail": i}) for i in range(creates)]
        if queued:
            self._parallel(rows)
            return
        from cmdgate.state.model import digest_of
        from cmdgate.state.store import StateStore

        store = StateStore(self.dynamodb, self.table)
        for key, how, change in rows:
            written = self.written.setdefault(key, Written())
            value = {**written.versions[-1][0], **change} if how == "patch" else change
            store.commit(key, store.register(key), json.dumps(value, separators=(",", ":")), digest_of(value))
            written.add(value, False)

    def _cycle(self, namespaces: int, keys: int) -> list[str]:
        names = self.namespaces(namespaces)
        return [names[i % namespaces] for i in range(keys)]

    def _parallel(self, rows: list[tuple[str, str, Any]]) -> None:
        with ThreadPoolExecutor(max_workers=self.writers) as pool:
            list(pool.map(lambda row: self._write(*row), rows))

    def _write(self, key: str, how: str, value: Any) -> None:
        if self.sync_queue is not None:
            self._write_direct(key, how, value)
            return
        for attempt in range(20):
            if how == "put":
                answer = self.api.put(f"/v1/state/{key}", json=value, headers=CREATE)
            elif how == "patch":
                answer = self.api.patch(f"/v1/state/{key}", json=value, headers=MERGE)
            else:
                version = self.api.get(f"/v1/state/{key}").headers["state-version"]
                answer = self.api.delete(f"/v1/state/{key}", headers={"If-Match": f'"{version}"'})
            if answer.status_code == 412 and how == "put" and self.api.get(f"/v1/state/{key}").json() == value:
                break  # it landed, though its answer (or a retried call's under it) was lost: a loaded machine
            if (answer.status_code in (429, 409) or answer.status_code >= 500) and attempt < 19:
                # A 5xx of the local front is mostly a cold environment timing out on a loaded machine.
                pause = 1.0 + 2 * random.random() if answer.status_code >= 500 else 0.2 * random.random()
                time.sleep(float(answer.headers.get("retry-after", "0")) or pause)
                continue
            if answer.status_code >= 300:
                raise RuntimeError(f"{how} {key}: {answer.status_code} {answer.text[:200]}")
            break
        written = self.written.setdefault(key, Written())
        if how == "put":
            written.add(value, False)
        elif how == "patch":
            written.add({**written.versions[-1][0], **value}, False)
        else:
            written.add(None, True)

    def _write_direct(self, key: str, how: str, change: Any) -> None:
        from cmdgate.state.model import digest_of
        from cmdgate.state.store import StateStore

        store = StateStore(self.dynamodb, self.table)
        written = self.written.setdefault(key, Written())
        if how == "delete":
            value, deleted = None, True
        else:
            value, deleted = ({**written.versions[-1][0], **change} if how == "patch" else change), False
        committed = store.commit(
            key, store.register(key), json.dumps(value, separators=(",", ":")), digest_of(value), deleted=deleted
        )
        self.sync_queue.schedule(key, committed.version)
        written.add(value, deleted)

    def _legacy_key(self, key: str) -> None:
        """A key synced before shards existed: its own gist holding `state.json` (format 1)."""
        from cmdgate.crypto import codec_for
        from cmdgate.state import layout
        from cmdgate.state.model import digest_of
        from cmdgate.state.store import StateStore

        value = {"key": key, "round": 1}
        text = json.dumps(value, separators=(",", ":"))
        store = StateStore(self.dynamodb, self.table)
        committed = store.commit(key, None, text, digest_of(value))
        codec = codec_for("kms", self.kms, self.kms_key)
        content = layout.encode_legacy(
            codec, key, 1, text, deleted=False, updated_at=committed.updated_at, digest=digest_of(value)
        )
        created = httpx.post(
            f"{self.gist_url}/gists",
            json={
                "description": f"cmdgate state: {key}",
                "public": False,
                "files": {"state.json": {"content": content}},
            },
            headers={"Authorization": f"Bearer {self.gist_token}"},
        )
        created.raise_for_status()
        gist = created.json()
        store.mark_synced(key, 1, gist["id"], gist["history"][0]["version"])
        written = self.written.setdefault(key, Written(legacy=True))
        written.add(value, False)

    # -- the state table ---------------------------------------------------------------------

    def registers(self) -> dict[str, dict[str, Any]]:
        """Every register of the drill's keys, as stored."""
        found: dict[str, dict[str, Any]] = {}
        for item in self._scan(f"key#{self.prefix}"):
            if item["sk"]["S"] == "register":
                found[item["pk"]["S"].removeprefix("key#")] = item
        return found

    def wait_synced(self, bound_s: float) -> None:
        deadline = time.monotonic() + bound_s
        while True:
            registers = self.registers()
            behind = [
                k
                for k, w in self.written.items()
                if k not in registers or int(registers[k].get("synced_version", {}).get("N", "0")) < len(w.versions)
            ]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(behind)} keys not synced within {bound_s} s, e.g. {behind[:3]}")
            time.sleep(1.0)

    def _scan(self, prefix: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        if prefix is not None:
            kwargs["FilterExpression"] = "begins_with(pk, :p)"
            kwargs["ExpressionAttributeValues"] = {":p": {"S": prefix}}
        while True:
            answer = self.dynamodb.scan(**kwargs)
            items.extend(answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return items
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def wipe(self) -> dict[str, Any]:
        """Note what is synced, then delete the state table's items; returns the recovery point."""
        if self.moto_url is not None:
            self.state_sync(enabled=False)
        at = time.time()
        registers = self.registers()
        lost: list[float] = []
        for key, written in self.written.items():
            synced = int(registers.get(key, {}).get("synced_version", {}).get("N", "0"))
            lost.extend(at - t for t in written.written_at[synced:])
            written.versions, written.written_at = written.versions[:synced], written.written_at[:synced]
        items = self._scan(None) if not self.namespaces_only else self._scan(f"key#{self.prefix}")
        if self.namespaces_only:
            items += self._scan(f"shard#{self.prefix}")
        for start in range(0, len(items), 25):
            request: dict[str, Any] = {
                self.table: [
                    {"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in items[start : start + 25]
                ]
            }
            while request:
                request = self.dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        left = len(self._scan(f"key#{self.prefix}"))
        if left:
            raise RuntimeError(f"{left} items of the drill's keys survived the wipe")
        return {
            "items_deleted": len(items),
            "writes_lost": len(lost),
            "lost_oldest_s": round(max(lost), 1) if lost else 0.0,
            "lost_newest_s": round(min(lost), 1) if lost else 0.0,
            "keys_lost": sum(1 for w in self.written.values() if not w.versions),
        }

    def state_sync(self, enabled: bool) -> None:
        """Pause (once idle: no sync under way) or resume the state sync function's event source mapping."""
        assert self.moto_url is not None
        reply = set_event_sources(self.moto_url, "StateSyncFunction", enabled)
        if reply.get("busy"):
            raise RuntimeError(f"the state sync did not finish its batch within a minute: {reply}")

    # -- recovery and verification -------------------------------------------------------------

    def recover(self, namespaces: list[str] | None) -> dict[str, Any]:
        """`cmdgate state recover`, as an operator runs it; its JSON report and the wall time."""
        command = [sys.executable, "-m", "cmdgate_cli", "--output", "json", "state", "recover"]
        for namespace in namespaces or []:
            command += ["--namespace", namespace]
        env = {
            **os.environ,
            "CMDGATE_URL": self.api_url,
            "CMDGATE_API_KEY": self.admin_key,
            "CMDGATE_CONFIG": os.devnull,
            "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("cli", "layers/resilience", ".")),
        }
        started = time.monotonic()
        # our own CLI with a fixed argv (bandit B603)
        ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)  # nosec B603
        elapsed = time.monotonic() - started
        if ran.returncode != 0:
            raise RuntimeError(
                f"cmdgate state recover exited {ran.returncode}: {ran.stdout[-1000:]} {ran.stderr[-1000:]}"
            )
        report: dict[str, Any] = json.loads(ran.stdout)
        report["wall_s"] = round(elapsed, 1)
        return report

    def verify(self, api_sample: int) -> list[str]:
        """Differences between what was synced and what the table holds now (empty: all recovered)."""
        from cmdgate.state.store import StateStore

        store = StateStore(self.dynamodb, self.table)
        problems: list[str] = []
        registers = store.registers(list(self.written))
        for key, written in self.written.items():
            register = registers.get(key)
            if not written.versions:
                if register is not None:
                    problems.append(f"{key}: never synced, yet recovered")
                continue
            value, deleted = written.versions[-1]
            if register is None:
                problems.append(f"{key}: not recovered")
                continue
            synced = len(written.versions)
            if (register.version, register.deleted, register.synced_version) != (synced, deleted, synced):
                problems.append(
                    f"{key}: version {register.version} deleted {register.deleted}, synced {synced} {deleted}"
                )
            elif not deleted and register.value != value:
                problems.append(f"{key}: value {register.value!r}, wrote {value!r}")
            if register.dirty_at is not None:
                problems.append(f"{key}: recovered dirty")
            entries, _ = store.history(key, 100, None)
            logged = sorted((e.version, None if e.deleted else e.value, e.deleted) for e in entries if e.revision)
            expected = [(n + 1, None if d else v, d) for n, (v, d) in enumerate(written.versions)]
            if logged != expected:
                problems.append(f"{key}: history {logged!r}, synced {expected!r}")
        for key in random.sample(sorted(self.written), min(api_sample, len(self.written))):
            written = self.written[key]
            answer = self.api.get(f"/v1/state/{key}")
            if not written.versions or written.versions[-1][1]:
                if answer.status_code != 404:
                    problems.append(f"{key}: GET {answer.status_code}, expected 404")
                continue
            if answer.status_code != 200 or answer.json() != written.versions[-1][0]:
                problems.append(f"{key}: GET {answer.status_code} {answer.text[:80]}")
            elif answer.headers.get("state-version") != str(len(written.versions)):
                problems.append(f"{key}: GET State-Version {answer.headers.get('state-version')}")
            history = self.api.get(f"/v1/state/{key}/history").json().get("versions", [])
            if [v["version"] for v in history] != list(range(len(written.versions), 0, -1)):
                problems.append(f"{key}: GET history {[v['version'] for v in history]}")
        return problems

    def summary(self) -> dict[str, int]:
        versions = [w.versions for w in self.written.values() if w.versions]
        return {
            "keys": len(self.written),
            "keys_synced": len(versions),
            "legacy_keys": sum(1 for w in self.written.values() if w.legacy),
            "tombstones": sum(1 for v in versions if v[-1][1]),
            "multi_version_keys": sum(1 for v in versions if len(v) > 1),
            "versions_synced": sum(len(v) for v in versions),
        }


# -- the benchmark run ---------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--legacy", type=int, default=5, help="keys in format-1 gists of their own")
    parser.add_argument("--tail-updates", type=int, default=20)
    parser.add_argument("--tail-creates", type=int, default=10)
    parser.add_argument("--sync-bound", type=float, default=240.0, help="seconds a round may take to sync")
    parser.add_argument("--api-sample", type=int, default=50, help="keys also read back through the API")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writing clients")
    parser.add_argument("--through-api", action="store_true", help="seed through the API instead of the table")
    parser.add_argument("--goal", type=float, default=120.0, help="recovery time goal (s)")
    parser.add_argument("--write-docs", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--param", action="append", default=[], help="extra template parameter overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from cmdgate_local.launcher import launch
    from cmdgate_local.stack import LOCAL_CREDENTIALS
    from cmdgate_local.template import REGION

    args = parse(argv)
    load_before = os.getloadavg()[0]
    write_docs = args.write_docs if args.write_docs is not None else args.keys >= 1000
    params = ("StateSyncVisibilityTimeoutS=5", "StateGistLingerS=10", *args.param)
    tmp = tempfile.mkdtemp(prefix="cmdgate-dr-drill-")
    print(f"stack logs: {tmp}/logs", flush=True)
    with launch(Path(tmp), admin_key=ADMIN_KEY, pool_size=4, params=params, startup_timeout_s=600) as running:
        credentials = {
            "endpoint_url": running.state["moto_url"],
            "region_name": REGION,
            "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }
        drill = Drill(
            api=httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60),
            api_url=running.url,
            admin_key=ADMIN_KEY,
            dynamodb=boto3.client("dynamodb", **credentials),
            kms=boto3.client("kms", **credentials),
            table=running.state["functions"]["ApiFunction"]["STATE_TABLE"],
            kms_key=running.state["functions"]["ApiFunction"]["STATE_KMS_KEY_ID"],
            gist_url=running.state["gist_url"],
            writers=args.writers,
            moto_url=running.state["moto_url"],
            gist_token=boto3.client("secretsmanager", **credentials).get_secret_value(
                SecretId=running.state["functions"]["ApiFunction"]["GITHUB_TOKEN_SECRET_ARN"]
            )["SecretString"],
        )
        if not args.through_api:
            from cmdgate.state.service import FifoSyncQueue

            queue_url = running.state["functions"]["ApiFunction"]["STATE_SYNC_QUEUE_URL"]
            drill.sync_queue = FifoSyncQueue(boto3.client("sqs", **credentials), queue_url)
        print(f"writing {args.keys} keys in {args.namespaces} namespaces and {args.legacy} format-1 gists ...")
        drill.seed(args.keys, args.namespaces, args.legacy, args.sync_bound)
        written = drill.summary()
        drill.tail(args.tail_updates, args.tail_creates)
        point = drill.wipe()
        print(f"wiped {point['items_deleted']} items; {point['writes_lost']} writes were not synced yet")
        recovery = drill.recover(None)
        print(f"recovered in {recovery['wall_s']} s ({recovery['calls']} calls): {recovery['counts']}")
        started = time.monotonic()
        problems = drill.verify(args.api_sample)
        verify_s = round(time.monotonic() - started, 1)
        drill.state_sync(enabled=True)
        gists = len(httpx.get(f"{drill.gist_url}/_admin/stats").json().get("write_log", []))
    figures = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "written": written,
        "point": point,
        "recovery": recovery,
        "verify_s": verify_s,
        "problems": len(problems),
        "seed_s": drill.phases.get("seed_s"),
        "gist_writes": gists,
        "goal_s": args.goal,
        "api_sample": args.api_sample,
        "load": (load_before, os.getloadavg()[0]),
    }
    text = render(figures)
    print(text)
    for problem in problems[:20]:
        print("MISMATCH", problem)
    if write_docs and not problems:
        write_section(text)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    ok = not problems and recovery["wall_s"] <= args.goal
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    print("dr-drill:", "passed" if ok else "FAILED")
    return 0 if ok else 1


def render(f: dict[str, Any]) -> str:
    w, p, r, c = f["written"], f["point"], f["recovery"], f["recovery"]["counts"]
    met = "met" if r["wall_s"] <= f["goal_s"] else "missed"
    return "\n".join(
        [
            "## Disaster recovery from the gists (`make dr-drill`)",
            "",
            f"Measured {f['date']} on the local stack (2 shared cores; moto, Lambda RIE and the loopback Gist",
            f"API on one machine; load average {f['load'][0]:.1f} at the start, {f['load'][1]:.1f} at the end),",
            "by `make dr-drill`: every item of the state table deleted (registers, version logs, the shard",
            "directory and the gist file-name key: what losing the table loses), then `cmdgate state",
            "recover` run once, then every key's register and history compared with what had been synced.",
            "The keys are written straight to the table with their sync messages, as the API's writes are",
            "(`--through-api` sends them through the API); the gist sync and the recovery are the stack's own.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| keys written | {w['keys']} ({w['legacy_keys']} in format-1 gists) |",
            f"| keys with several synced versions | {w['multi_version_keys']} |",
            f"| deleted keys (tombstones) | {w['tombstones']} |",
            f"| versions synced before the wipe | {w['versions_synced']} |",
            f"| gists read | {c.get('gists_recovered', 0)} ({c.get('revisions_read', 0)} revisions) |",
            f"| **time to recovery** | **{r['wall_s']} s** ({r['calls']} calls; goal {f['goal_s']:.0f} s: {met}) |",
            f"| keys recovered | {c.get('keys_recovered', 0)} ({c.get('tombstones_recovered', 0)} tombstones) |",
            f"| versions logged again | {c.get('versions_logged', 0)} |",
            f"| shard directory entries rebuilt | {c.get('shards_recovered', 0)} |",
            f"| **recovery point: writes lost** | **{p['writes_lost']}** ({p['keys_lost']} keys never synced) |",
            f"| age of the lost writes at the wipe | {p['lost_newest_s']}-{p['lost_oldest_s']} s |",
            f"| keys differing from what was synced | {f['problems']} |",
            f"| verification (every register and log, {f['api_sample']} keys through the API) | {f['verify_s']} s |",
            "",
            "The lost writes are the ones still lingering before their gist write (`StateGistLingerS`,",
            "10 s) when the table went: the recovery point of the gists is the sync lag, seconds in normal",
            "operation, longer while GitHub is unreachable or the write budget is spent (the dirty index",
            "says how far behind: `Gist-Synced-Version` per key, the healer's gist drift scan). DynamoDB",
            "point-in-time recovery covers them (docs/runbooks/disaster-recovery.md).",
        ]
    )


def write_section(text: str) -> None:
    block = f"{SECTION_START}\n{text}\n{SECTION_END}"
    if DOCS.exists():
        current = DOCS.read_text()
        if SECTION_START in current and SECTION_END in current:
            head, rest = current.split(SECTION_START, 1)
            _, tail = rest.split(SECTION_END, 1)
            DOCS.write_text(head + block + tail)
            return
        DOCS.write_text(current.rstrip("\n") + "\n\n" + block + "\n")
        return
    intro = "# Reliability\n\nFigures of cmdgate's reliability drills, each in a section of its own.\n\n"
    DOCS.write_text(intro + block + "\n")


if __name__ == "__main__":
    sys.exit(main())
