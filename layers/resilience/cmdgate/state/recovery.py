"""Disaster recovery: the register, version log and shard directory rebuilt from this deployment's gists.

When the state table has lost its items (and point-in-time recovery is not an option, or only the
gists survived), every version that reached a gist is still there: a shard gist's newest revision
holds each key's newest synced version (a tombstone for a deleted key), and its older revisions
the versions before. A recovery:

1. lists the token's gists (`GET /gists`, 100 a page, every page) and keeps this deployment's: a
   shard gist whose description and `_manifest.json` both name this stack (a gist of another
   stack, or of something else, is left alone), and a format-1 gist (`cmdgate state: <key>`,
   only `state.json`) whose envelope was made under this deployment's KMS key (format 1 says no
   stack; in plain text nothing ties one to a deployment, so none is taken);
2. per gist, reads its newest revision: each file's key (in clear, or sealed in the file:
   `cmdgate.state.layout.key_in`; the HMAC file name is not reversed, so the name key is not
   needed), decrypts and checks it (`layout.decode`, bound to that key), and puts the key's
   register at that version - synced, not dirty, in that gist and file, `recovered_version` set -
   unless the key has a register already (it is then counted `present` if it holds the same
   version, `conflicting` if not, and left as it is); a shard gist's directory entry (files,
   bytes, gist id) is put unless one exists;
3. walks the gist's revisions newest first (at most `max_revisions`) and logs every version found
   (value, tombstone, the revision holding it, no expiry) for keys whose register this recovery
   wrote, up to their recovered version: a version written after the wipe is never overwritten.

Every write is conditional or a put of what the gists say, so a recovery run twice, or resumed
after it stopped, changes nothing twice. Work is bounded by the caller's time (`budget_s`): the
answer says which gists remain and how many revisions of the first one are done, and the caller
asks again with them (`cmdgate state recover` does). What never reached a gist is lost here:
point-in-time recovery of the table covers it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from cmdgate.crypto import Codec
from cmdgate.gist import Gist, GistClient, GistNotFound
from cmdgate.state import layout
from cmdgate.state.layout import ShardRef, namespace_of
from cmdgate.state.model import digest_of
from cmdgate.state.shards import ShardDirectory

logger = Logger(child=True)

LIST_PAGE = 100  # GitHub's largest page of GET /gists and GET /gists/{id}/commits
MAX_LIST_PAGES = 100  # 10,000 gists listed at most
LEGACY_DESCRIPTION = "cmdgate state: "
BATCH_WRITE_MAX = 25  # DynamoDB's BatchWriteItem limit
BATCH_GET_MAX = 100
REVISION_S = 2.0  # time kept in hand to finish the revision being read when the budget runs out
_SHARD_DESCRIPTION = re.compile(
    r"cmdgate state \(format (?P<format>\d+)\) · stack (?P<stack>.+) · namespace (?P<ns>\S+) · shard (?P<n>\d+)"
)


@dataclass
class RecoveryReport:
    """What one recovery call did, and where the next call starts (`gists`, `skip`; none left: done)."""

    gists: list[str] = field(default_factory=list)
    skip: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return not self.gists

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def view(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "next": None if self.done else {"gists": self.gists, "skip": self.skip},
            "counts": dict(sorted(self.counts.items())),
        }


@dataclass(frozen=True)
class _Found:
    """One key's file in one revision, opened and checked."""

    key: str
    file: str
    version: int
    deleted: bool
    value_json: str
    updated_at: str


@dataclass(frozen=True)
class _Target:
    """A gist of this deployment: a shard (format 2) or a single key's own gist (format 1)."""

    gist_id: str
    shard: ShardRef | None
    legacy_key: str | None = None


class StateRecovery:
    """Rebuilds registers, version logs and the shard directory from this stack's gists."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        gist: GistClient,
        codec: Codec,
        shards: ShardDirectory,
        *,
        stack_id: str,
        plaintext: bool,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._gist = gist
        self._codec = codec
        self._shards = shards
        self._stack_id = stack_id
        self._plaintext = plaintext
        self._clock = clock
        self._wall_clock = wall_clock
        self._our_kid: str | None = None

    # -- one call -------------------------------------------------------------------

    def run(
        self,
        *,
        namespaces: frozenset[str] | None,
        gists: list[str] | None,
        skip: int = 0,
        max_revisions: int = 100,
        budget_s: float = 20.0,
    ) -> RecoveryReport:
        """Recover as much as `budget_s` allows: from `gists` (resuming `skip` revisions into the
        first), or from this deployment's gists listed now when `gists` is None."""
        deadline = self._clock() + budget_s
        report = RecoveryReport()
        remaining = list(gists) if gists is not None else self._discover(namespaces, report)
        while remaining:
            if self._clock() + REVISION_S > deadline:
                break
            finished, skip = self._recover_gist(remaining[0], skip, namespaces, max_revisions, deadline, report)
            if not finished:
                break
            remaining.pop(0)
            skip = 0
        report.gists, report.skip = remaining, (skip if remaining else 0)
        logger.info("state recovery call", extra={"counts": report.counts, "gists_left": len(remaining)})
        return report

    def _discover(self, namespaces: frozenset[str] | None, report: RecoveryReport) -> list[str]:
        """The ids of this deployment's gists (by description; each is checked again when read)."""
        found: list[str] = []
        seen: set[str] = set()
        for page in range(1, MAX_LIST_PAGES + 1):
            listed = self._gist.list_gists(per_page=LIST_PAGE, page=page)
            for summary in listed:
                if summary.id in seen:
                    continue  # a gist updated while listing moves up a page
                seen.add(summary.id)
                report.count("gists_listed")
                target = self._classify(summary.id, summary.description or "", set(summary.files))
                if target is None:
                    report.count("gists_not_ours")
                elif _in_scope(target, namespaces):
                    found.append(summary.id)
            if len(listed) < LIST_PAGE:
                break
        report.count("gists_to_recover", len(found))
        return found

    def _classify(self, gist_id: str, description: str, files: set[str]) -> _Target | None:
        """What a gist's description and file names say it is, if it is one of this stack's (None: not ours)."""
        match = _SHARD_DESCRIPTION.fullmatch(description)
        if match is not None:
            shard = ShardRef(match["ns"], int(match["n"]))
            if (
                int(match["format"]) == layout.FORMAT
                and layout.description(self._stack_id, shard) == description
                and layout.MANIFEST_FILE in files
            ):
                return _Target(gist_id, shard)
            return None
        if description.startswith(LEGACY_DESCRIPTION) and files == {layout.LEGACY_FILE}:
            key = description.removeprefix(LEGACY_DESCRIPTION)
            return _Target(gist_id, None, key)
        return None

    # -- one gist ---------------------------------------------------------------------

    def _recover_gist(
        self,
        gist_id: str,
        skip: int,
        namespaces: frozenset[str] | None,
        max_revisions: int,
        deadline: float,
        report: RecoveryReport,
    ) -> tuple[bool, int]:
        """Recover one gist from revision `skip` on (newest first); (finished, revisions done)."""
        try:
            current = self._gist.get_gist(gist_id)
        except GistNotFound:
            report.count("gists_missing")  # deleted since it was listed, or never there (the caller's list)
            return True, 0
        target = self._classify(gist_id, current.description or "", set(current.files))
        if target is None or not _in_scope(target, namespaces) or not self._owned(target, current):
            report.count("gists_not_ours")
            return True, 0
        seen: dict[tuple[str, str], _Found | None] = {}
        if skip == 0:
            newest = self._files_of(target, current, seen, report)
            self._put_registers(target, current, newest, report)
            if target.shard is not None:
                self._put_shard(target.shard, gist_id, current, report)
            report.count("gists_recovered")
        recovered: dict[str, int] = {}
        checked: set[str] = set()
        logged: set[tuple[str, int]] = set()
        for sha in self._revisions(gist_id, skip):
            if skip >= max_revisions:
                report.count("gists_history_truncated")
                return True, skip
            if self._clock() + REVISION_S > deadline:
                return False, skip
            revision = current if sha == current.version else self._gist.get_revision(gist_id, sha)
            report.count("revisions_read")
            files = self._files_of(target, revision, seen, report)
            unchecked = {f.key for f in files} - checked
            if unchecked:
                recovered.update(self._recovered_versions(gist_id, unchecked))
                checked |= unchecked
            self._put_versions(files, recovered, sha, logged, report)
            skip += 1
        return True, skip

    def _owned(self, target: _Target, gist: Gist) -> bool:
        """The gist's own content says it is this stack's: its manifest, or (format 1) our KMS key's envelope."""
        if target.shard is not None:
            try:
                manifest = json.loads(self._gist.read_file(gist, layout.MANIFEST_FILE))
            except ValueError:
                return False
            return isinstance(manifest, dict) and (
                manifest.get("stack") == self._stack_id
                and manifest.get("namespace") == target.shard.namespace
                and manifest.get("shard") == target.shard.number
                and manifest.get("format") == layout.FORMAT
            )
        if self._plaintext:
            return False  # nothing in a plain-text format-1 gist says whose it is
        try:
            document = json.loads(self._gist.read_file(gist, layout.LEGACY_FILE))
        except ValueError:
            return False
        envelope = document.get("value") if isinstance(document, dict) else None
        return isinstance(envelope, dict) and envelope.get("kid") == self._kid()

    def _kid(self) -> str | None:
        """This deployment's KMS key as its envelopes name it (one data key, reused by the codec)."""
        if self._our_kid is None:
            probe = self._codec.encrypt(b"", layout.KEY_NAME_CONTEXT)
            self._our_kid = str(probe.get("kid"))
        return self._our_kid

    def _revisions(self, gist_id: str, skip: int) -> Iterator[str]:
        """Revision shas newest first, from the `skip`-th on."""
        page = skip // LIST_PAGE + 1
        offset = skip % LIST_PAGE
        while True:
            commits = self._gist.list_commits(gist_id, per_page=LIST_PAGE, page=page)
            for commit in commits[offset:]:
                yield commit.version
            if len(commits) < LIST_PAGE:
                return
            page, offset = page + 1, 0

    def _files_of(
        self, target: _Target, gist: Gist, seen: dict[tuple[str, str], _Found | None], report: RecoveryReport
    ) -> list[_Found]:
        """The keys' files of one revision, each opened once per call (a file unchanged since is not opened again)."""
        found: dict[str, _Found] = {}
        for name in sorted(gist.files):
            if name == layout.MANIFEST_FILE:
                continue
            content = self._gist.read_file(gist, name)
            memo = (name, content)
            if memo not in seen:
                seen[memo] = self._open(target, name, content, report)
            opened = seen[memo]
            if opened is None:
                continue
            other = found.get(opened.key)
            if other is not None and other.version >= opened.version:
                report.count("files_duplicated")  # two files claim one key: the newer one counts
                continue
            found[opened.key] = opened
        return list(found.values())

    def _open(self, target: _Target, name: str, content: str, report: RecoveryReport) -> _Found | None:
        try:
            key = layout.key_in(self._codec, content)
            if key is None:
                report.count("files_unnamed")  # written before files carried their key's name
                return None
            if target.legacy_key is not None and key != target.legacy_key:
                raise layout.InvalidStateFile("the file names another key than its gist")
            if target.shard is not None and namespace_of(key) != target.shard.namespace:
                raise layout.InvalidStateFile("the key is not of the shard's namespace")
            opened = layout.decode(self._codec, key, content)
            updated_at = json.loads(content).get("updated_at", "")
        except layout.InvalidStateFile:
            logger.error("gist file fails its check", extra={"gist_id": target.gist_id, "file": name})
            report.count("files_unreadable")
            return None
        value_json = json.dumps(opened.value, separators=(",", ":"), ensure_ascii=False)
        return _Found(key, name, opened.version, opened.deleted, value_json, str(updated_at))

    # -- writes ---------------------------------------------------------------------------

    def _put_registers(self, target: _Target, gist: Gist, files: list[_Found], report: RecoveryReport) -> None:
        revision = gist.version or ""
        now = f"{self._wall_clock():.3f}"
        for found in files:
            item: dict[str, Any] = {
                "pk": {"S": f"key#{found.key}"},
                "sk": {"S": "register"},
                "version": {"N": str(found.version)},
                "value_json": {"S": found.value_json},
                "digest": {"S": digest_of(json.loads(found.value_json))},
                "updated_at": {"S": found.updated_at},
                "deleted": {"BOOL": found.deleted},
                "gist_id": {"S": target.gist_id},
                "synced_version": {"N": str(found.version)},
                "revision_sha": {"S": revision},
                "recovered_version": {"N": str(found.version)},
                "recovered_at": {"N": now},
            }
            if target.shard is not None:
                item["shard"] = {"S": target.shard.id}
                item["gist_file"] = {"S": found.file}
            try:
                self._dynamodb.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                old = error.response.get("Item") or {}
                same = old.get("version", {}).get("N") == str(found.version) and old.get("gist_id", {}).get("S") == (
                    target.gist_id
                )
                report.count("keys_present" if same else "keys_conflicting")
                if not same:
                    logger.warning("key written since the loss: left as it is", extra={"key": found.key})
                continue
            report.count("keys_recovered")
            if found.deleted:
                report.count("tombstones_recovered")

    def _put_shard(self, shard: ShardRef, gist_id: str, gist: Gist, report: RecoveryReport) -> None:
        names = [name for name in gist.files if name != layout.MANIFEST_FILE]
        size = sum(gist.files[name].size + len(name) + 64 for name in names)
        if self._shards.adopt(shard, gist_id, len(names), size):
            report.count("shards_recovered")

    def _recovered_versions(self, gist_id: str, keys: set[str]) -> dict[str, int]:
        """Keys whose register this recovery wrote for this gist, with the version it wrote."""
        found: dict[str, int] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"pk": {"S": f"key#{k}"}, "sk": {"S": "register"}} for k in ordered[start : start + 100]],
                    "ConsistentRead": True,
                    "ProjectionExpression": "pk, gist_id, recovered_version",
                }
            }
            while request:
                answer = self._dynamodb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    if "recovered_version" in item and item.get("gist_id", {}).get("S") == gist_id:
                        found[item["pk"]["S"].removeprefix("key#")] = int(item["recovered_version"]["N"])
                request = answer.get("UnprocessedKeys") or {}
        return found

    def _put_versions(
        self,
        files: list[_Found],
        recovered: dict[str, int],
        sha: str,
        logged: set[tuple[str, int]],
        report: RecoveryReport,
    ) -> None:
        """Log the versions one revision holds. Revisions are read newest first, so a version unchanged
        over several revisions is put again by each, and the oldest - the one that carried it - stays."""
        items = []
        for found in files:
            if found.key not in recovered or found.version > recovered[found.key]:
                continue  # not this recovery's key, or a version written after it
            if (found.key, found.version) not in logged:
                logged.add((found.key, found.version))
                report.count("versions_logged")
            items.append(
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"key#{found.key}"},
                            "sk": {"S": f"v#{found.version:012d}"},
                            "version": {"N": str(found.version)},
                            "value_json": {"S": found.value_json},
                            "digest": {"S": digest_of(json.loads(found.value_json))},
                            "updated_at": {"S": found.updated_at},
                            "deleted": {"BOOL": found.deleted},
                            "revision": {"S": sha},
                        }
                    }
                }
            )
        self._batch_write(items)

    def _batch_write(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), BATCH_WRITE_MAX):
            request: dict[str, Any] = {self._table: items[start : start + BATCH_WRITE_MAX]}
            for attempt in range(10):
                answer = self._dynamodb.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise RuntimeError("the state table kept refusing the recovered versions")


def _in_scope(target: _Target, namespaces: frozenset[str] | None) -> bool:
    if namespaces is None:
        return True
    if target.shard is not None:
        return target.shard.namespace in namespaces
    return namespace_of(target.legacy_key or "") in namespaces
