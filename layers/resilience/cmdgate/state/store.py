"""The version register and version log in the state table, written in one transaction.

Register item: `pk = "key#<key>"`, `sk = "register"`. Version log: same pk, `sk = "v#<12-digit version>"`.
Every write is a TransactWriteItems of the register update - conditional on the version the writer
read (and, for fenced writes, on `fence <= token`) - and the new log entry, so a write either
lands whole or not at all, and no path can clobber another. A write that carries no fence also
checks, in the same transaction, that nobody holds a live lease on the key (`lock#state#<key>`
in the control table): a lease holder excludes every other writer, and its own writes are fenced.

Gist sync bookkeeping lives on the register too: a write sets `dirty_ns` (the key's namespace)
and, unless already set, `dirty_at`; the sparse `DirtyIndex` (hash `dirty_ns`, range `dirty_at`)
is therefore the set of keys whose newest version is not in a gist yet, oldest first. Marking a
version synced removes both only if no newer version was written meanwhile. `shard` and
`gist_file` say where the key's file is (cmdgate.state.layout).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from cmdgate.audit.stamp import AuditStamp
from cmdgate.aws_errors import THROTTLING_CODES
from cmdgate.locks import fenced_update
from cmdgate.locks.store.base import lock_key
from cmdgate.retry import Retrier, RetryPolicy
from cmdgate.state.errors import StateThrottled
from cmdgate.state.layout import namespace_of
from cmdgate.state.model import Register, VersionEntry

REGISTER_SK = "register"
# Cancellation reasons that say "not now" rather than "not this version": retried, then 503.
THROTTLING_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})
TRANSIENT_REASONS = THROTTLING_REASONS | {"TransactionConflict"}
# Throttling outside a transaction, once botocore's own retries are spent.
# A commit is one short transaction: a few quick retries, then the caller is told to come back.
COMMIT_RETRY = RetryPolicy(max_attempts=3, base_s=0.05, cap_s=0.4, min_attempt_s=0.2, safety_margin_s=0.0)
THROTTLED_RETRY_AFTER_S = 1
REGISTER_UPDATE_INDEX, LEASE_CHECK_INDEX = 0, 2  # the transaction's members: register update, log put, lease check
DIRTY_INDEX = "DirtyIndex"
BATCH_GET_MAX = 100  # DynamoDB's BatchGetItem limit
TRANSACTION_MAX = 100  # items in one TransactWriteItems
MARK_ROUNDS = 3  # transactions tried for one chunk of keys a gist revision carried, each without those refused
_PLACEABLE = "attribute_exists(pk) AND attribute_not_exists(#shard) AND attribute_not_exists(gist_id)"
_NOT_BEHIND = "(attribute_not_exists(synced_version) OR synced_version < :v)"
_SYNCED_CLEAN = "SET synced_version = :v, revision_sha = :sha, gist_id = :gist REMOVE dirty_ns, dirty_at"


Placement = tuple[str | None, str | None, str | None]  # a key's (shard, gist_file, gist_id) as it stands


def _pk(key: str) -> str:
    return f"key#{key}"


def _version_sk(version: int) -> str:
    return f"v#{version:012d}"


class WriteConflict(Exception):
    """The register changed since it was read (or a newer fence wrote it).

    `current` is the register as the failed write found it, when DynamoDB returned it (the update
    asks for it on a failed condition), so a retry needs no second read; `found` says whether it did.
    """

    def __init__(self, key: str, current: Register | None = None, *, found: bool = False) -> None:
        super().__init__(key)
        self.current = current
        self.found = found


class EffectApplied(Exception):
    """The write's effect id was applied before (a retried command): nothing is written again."""

    def __init__(self, key: str, version: int | None) -> None:
        super().__init__(key)
        self.version = version


class KeyLeased(WriteConflict):
    """Another holder has a live lease on the key; `lease_until` (epoch s) when known."""

    def __init__(self, key: str, lease_until: float | None) -> None:
        super().__init__(key)
        self.lease_until = lease_until


def lease_name(key: str) -> str:
    """The name of a key's lease lock (cmdgate.locks): `state#<key>`."""
    return f"state#{key}"


class StateStore:
    """Reads and conditional writes of registers and version logs."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        retention_s: int = 7 * 86400,
        audit_retention_s: int = 400 * 86400,
        lease_table: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._table = table
        self._retention_s = retention_s
        self._audit_retention_s = audit_retention_s
        self._lease_table = lease_table  # the control table, where keys' leases live
        self._clock = clock
        self._pause = sleep
        self._retrier = Retrier(COMMIT_RETRY, is_retryable=_transient_cancellation, sleep=sleep, random=rand)

    def register(self, key: str) -> Register | None:
        """The register of a key (strongly consistent), or None if it was never written."""
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}}, ConsistentRead=True
        ).get("Item")
        return _register(key, item) if item else None

    def version(self, key: str, version: int) -> VersionEntry | None:
        """One logged version, unless it aged out of the retention window."""
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": _pk(key)}, "sk": {"S": _version_sk(version)}}, ConsistentRead=True
        ).get("Item")
        if not item or self._expired(item):
            return None
        return _entry(key, item)

    def history(
        self, key: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[VersionEntry], dict[str, Any] | None]:
        """Logged versions, newest first, and where the next page starts."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :v)",
            "ExpressionAttributeValues": {":pk": {"S": _pk(key)}, ":v": {"S": "v#"}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = {"pk": {"S": _pk(key)}, "sk": {"S": start["sk"]}}
        response = self._client.query(**kwargs)
        entries = [_entry(key, item) for item in response.get("Items", []) if not self._expired(item)]
        last = response.get("LastEvaluatedKey")
        return entries, ({"sk": last["sk"]["S"]} if last else None)

    def commit(
        self,
        key: str,
        read: Register | None,
        value_json: str,
        digest: str,
        *,
        deleted: bool = False,
        fence: int | None = None,
        effect: str | None = None,
        audit: AuditStamp | None = None,
    ) -> Register:
        """Write version `read.version + 1` if the register still is what the writer read.

        With `audit` (the request's stamp and action) the log entry is also the write's audit entry:
        it lives for the audit retention, while its value counts as retained only for the state's
        (`retained_until`), so the audit costs the write no extra item.

        With `effect` (e.g. a command's execution id), the same transaction records it
        (`effect#<id>#<key>`, kept for the retention window) and refuses to write if it was recorded
        before: a command attempted again after a crash applies its change once (EffectApplied).
        """
        now = self._clock()
        updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        version = (read.version if read else 0) + 1
        values: dict[str, Any] = {
            ":version": {"N": str(version)},
            ":value": {"S": value_json},
            ":digest": {"S": digest},
            ":updated": {"S": updated_at},
            ":deleted": {"BOOL": deleted},
            ":ns": {"S": namespace_of(key)},
            ":now": {"N": f"{now:.3f}"},
        }
        if read is None:
            condition = "attribute_not_exists(pk)"
        else:
            condition = "version = :read"
            values[":read"] = {"N": str(read.version)}
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}},
            "UpdateExpression": (
                "SET version = :version, value_json = :value, digest = :digest, updated_at = :updated, "
                "deleted = :deleted, dirty_ns = :ns, dirty_at = if_not_exists(dirty_at, :now)"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            # A lost race brings the register back with the refusal: the writer retries without a read.
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if fence is not None:
            update = fenced_update(update, fence)
        log_item = {
            "pk": {"S": _pk(key)},
            "sk": {"S": _version_sk(version)},
            "version": {"N": str(version)},
            "value_json": {"S": value_json},
            "digest": {"S": digest},
            "updated_at": {"S": updated_at},
            "deleted": {"BOOL": deleted},
            "expires_at": {"N": str(int(now) + self._retention_s)},
        }
        if audit is not None:
            log_item.update({name: {"S": text} for name, text in audit.fields(f"{key}#{version}").items()})
            log_item["retained_until"] = log_item["expires_at"]
            log_item["expires_at"] = {"N": str(int(now) + max(self._retention_s, self._audit_retention_s))}
        items: list[dict[str, Any]] = [
            {"Update": update},
            {"Put": {"TableName": self._table, "Item": log_item, "ConditionExpression": "attribute_not_exists(sk)"}},
        ]
        if fence is None and self._lease_table:
            items.append({"ConditionCheck": self._no_live_lease(key, now)})
        effect_index = len(items)
        if effect is not None:
            items.append({"Put": self._effect_marker(effect, key, version, now)})
        try:
            self._retrier.call(lambda: self._client.transact_write_items(TransactItems=items))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if _transient_cancellation(error) or code in THROTTLING_CODES:
                # Throttling or a concurrent transaction is not a version conflict: never a 412/409.
                raise StateThrottled(
                    "The state table is busy; try again shortly.",
                    headers={"Retry-After": str(THROTTLED_RETRY_AFTER_S)},
                ) from None
            if code == "TransactionCanceledException":
                applied = _failed_item(error, effect_index) if effect is not None else None
                if applied is not None:
                    recorded = applied.get("version", {}).get("N")
                    raise EffectApplied(key, int(recorded) if recorded is not None else None) from None
                leased = _failed_item(error, LEASE_CHECK_INDEX) if len(items) > LEASE_CHECK_INDEX else None
                if leased is not None:
                    until = leased.get("lease_until", {}).get("N")
                    raise KeyLeased(key, float(until) if until is not None else None) from None
                reasons = error.response.get("CancellationReasons")
                lost = _failed_item(error, REGISTER_UPDATE_INDEX)
                if lost is not None and isinstance(reasons, list):
                    # No item: the register did not exist (a create that lost is told so as well).
                    raise WriteConflict(key, _register(key, lost) if lost else None, found=True) from None
                raise WriteConflict(key) from None
            raise
        return Register(
            key=key,
            version=version,
            value_json=value_json,
            digest=digest,
            updated_at=updated_at,
            deleted=deleted,
            fence=fence if fence is not None else (read.fence if read else None),
            gist_id=read.gist_id if read else None,
            synced_version=read.synced_version if read else 0,
            revision_sha=read.revision_sha if read else None,
            shard=read.shard if read else None,
            gist_file=read.gist_file if read else None,
            dirty_at=read.dirty_at if read and read.dirty_at is not None else round(now, 3),
        )

    def _effect_marker(self, effect: str, key: str, version: int, now: float) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Item": {
                "pk": {"S": f"effect#{effect}#{key}"},  # one effect per id and key
                "sk": {"S": "effect"},
                "key": {"S": key},
                "version": {"N": str(version)},
                "expires_at": {"N": str(int(now) + self._retention_s)},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _no_live_lease(self, key: str, now: float) -> dict[str, Any]:
        return {
            "TableName": self._lease_table,
            "Key": {"pk": {"S": lock_key(lease_name(key))}},
            "ConditionExpression": "attribute_not_exists(#until) OR #until <= :now",
            "ExpressionAttributeNames": {"#until": "lease_until"},
            "ExpressionAttributeValues": {":now": {"N": f"{now:.6f}"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def registers(self, keys: list[str]) -> dict[str, Register]:
        """The registers of several keys (strongly consistent); unknown keys are absent."""
        found: dict[str, Register] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [
                        {"pk": {"S": _pk(k)}, "sk": {"S": REGISTER_SK}} for k in unique[start : start + BATCH_GET_MAX]
                    ],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(8):
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    key = item["pk"]["S"].removeprefix("key#")
                    found[key] = _register(key, item)
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep_unprocessed(attempt)
            else:
                raise StateThrottled("The state table is busy; try again shortly.")
        return found

    def dirty_keys(self, namespace: str, limit: int) -> list[str]:
        """Keys of a namespace with a write not yet synced, oldest first (the index lags writes slightly)."""
        keys: list[str] = []
        start: dict[str, Any] | None = None
        while len(keys) < limit:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": DIRTY_INDEX,
                "KeyConditionExpression": "dirty_ns = :ns",
                "ExpressionAttributeValues": {":ns": {"S": namespace}},
                "Limit": limit - len(keys),
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            answer = self._client.query(**kwargs)
            keys.extend(item["pk"]["S"].removeprefix("key#") for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
        return keys

    def place(self, key: str, shard: str, gist_file: str) -> Placement:
        """Put a key in a shard's file unless it has a gist already; `(shard, gist_file, gist_id)` as it stands."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}},
                UpdateExpression="SET #shard = :shard, gist_file = :file",
                ConditionExpression=_PLACEABLE,
                ExpressionAttributeNames={"#shard": "shard"},
                ExpressionAttributeValues={":shard": {"S": shard}, ":file": {"S": gist_file}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item = error.response.get("Item") or {}
            return (
                item.get("shard", {}).get("S"),
                item.get("gist_file", {}).get("S"),
                item.get("gist_id", {}).get("S"),
            )
        return shard, gist_file, None

    def place_many(
        self, placements: list[tuple[str, str, str]]
    ) -> dict[str, tuple[str | None, str | None, str | None]]:
        """`place` for many `(key, shard, gist_file)`: one transaction per 100 keys when none was placed
        meanwhile (the usual case), key by key otherwise."""
        placed: dict[str, Placement] = {}
        for start in range(0, len(placements), TRANSACTION_MAX):
            chunk = placements[start : start + TRANSACTION_MAX]
            items = [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}},
                        "UpdateExpression": "SET #shard = :shard, gist_file = :file",
                        "ConditionExpression": _PLACEABLE,
                        "ExpressionAttributeNames": {"#shard": "shard"},
                        "ExpressionAttributeValues": {":shard": {"S": shard}, ":file": {"S": name}},
                    }
                }
                for key, shard, name in chunk
            ]
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                placed.update({key: self.place(key, shard, name) for key, shard, name in chunk})
                continue
            placed.update({key: (shard, name, None) for key, shard, name in chunk})
        return placed

    def mark_synced_many(self, versions: dict[str, int], gist_id: str, revision_sha: str) -> None:
        """`mark_synced` for every key one gist revision carried: one transaction per 50 keys.

        A key written again since (its register's version moved on) cancels its transaction; the
        cancellation names it, so the others go again in a transaction without it (at most
        MARK_ROUNDS rounds) and only the keys named are marked one by one. Under a steady stream of
        writes some key of a busy gist has nearly always moved on: marking them all one by one cost
        each gist write 2-3 calls per key.
        """
        entries = list(versions.items())
        one_by_one: list[tuple[str, int]] = []
        for start in range(0, len(entries), TRANSACTION_MAX // 2):
            pending = entries[start : start + TRANSACTION_MAX // 2]
            for _ in range(MARK_ROUNDS):
                refused = self._mark_synced_together(pending, gist_id, revision_sha)
                if not refused:
                    pending = []
                    break
                one_by_one += refused
                pending = [entry for entry in pending if entry not in refused]
                if not pending:
                    break
            one_by_one += pending  # cancelled in every round, each time by others
        for key, version in one_by_one:
            self.mark_synced(key, version, gist_id, revision_sha)

    def _mark_synced_together(
        self, entries: list[tuple[str, int]], gist_id: str, revision_sha: str
    ) -> list[tuple[str, int]]:
        """One transaction marking `entries` synced: [] when it went through, else the entries it
        refused (all of them when the cancellation does not say which)."""
        items: list[dict[str, Any]] = []
        for key, version in entries:
            values = {":v": {"N": str(version)}, ":sha": {"S": revision_sha}, ":gist": {"S": gist_id}}
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}},
                        "UpdateExpression": _SYNCED_CLEAN,
                        "ConditionExpression": f"{_NOT_BEHIND} AND version = :v",
                        "ExpressionAttributeValues": values,
                    }
                }
            )
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": _pk(key)}, "sk": {"S": _version_sk(version)}},
                        "UpdateExpression": "SET revision = :sha REMOVE expires_at, retained_until",
                        "ConditionExpression": "attribute_exists(sk)",
                        "ExpressionAttributeValues": {":sha": {"S": revision_sha}},
                    }
                }
            )
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons")
            if not isinstance(reasons, list) or len(reasons) != len(items):
                return entries
            # Two items per entry; any reason but "None" (a failed condition, a conflict) refuses it.
            refused = [
                entry
                for n, entry in enumerate(entries)
                if any(_reason_code(reasons[2 * n + i]) != "None" for i in (0, 1))
            ]
            return refused or entries  # cancelled with no member named (throttled): all one by one
        return []

    def mark_synced(self, key: str, version: int, gist_id: str, revision_sha: str) -> None:
        """Record that `version` is in gist revision `revision_sha` (never moving synced_version back).

        The key stops being dirty only if `version` is still its newest.
        """
        values = {":v": {"N": str(version)}, ":sha": {"S": revision_sha}, ":gist": {"S": gist_id}}
        not_behind = _NOT_BEHIND
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}},
                UpdateExpression=_SYNCED_CLEAN,
                ConditionExpression=f"{not_behind} AND version = :v",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            try:  # a newer version was written meanwhile: it stays dirty
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}},
                    UpdateExpression="SET synced_version = :v, revision_sha = :sha, gist_id = :gist",
                    # A register that is gone (the table lost it while this write was in flight) is
                    # not made again as a stub without a version: reads would fail on it.
                    ConditionExpression=f"attribute_exists(pk) AND {not_behind}",
                    ExpressionAttributeValues=values,
                )
            except ClientError as again:
                if again.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
        # A version that reached the gist is kept beyond the retention window.
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(key)}, "sk": {"S": _version_sk(version)}},
                UpdateExpression="SET revision = :sha REMOVE expires_at, retained_until",
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeValues={":sha": {"S": revision_sha}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def scan_registers(self, start: dict[str, Any] | None, limit: int) -> tuple[list[Register], dict[str, Any] | None]:
        """Registers among the next `limit` items of the table from `start` (a scan page), and where the
        next page starts (None: the end of the table). Bounded by items read, not registers found."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Limit": limit,
            "FilterExpression": "sk = :register AND begins_with(pk, :key)",
            "ExpressionAttributeValues": {":register": {"S": REGISTER_SK}, ":key": {"S": "key#"}},
            "ConsistentRead": True,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        answer = self._client.scan(**kwargs)
        found = [_register(item["pk"]["S"].removeprefix("key#"), item) for item in answer.get("Items", [])]
        return found, answer.get("LastEvaluatedKey")

    def mark_unsynced(self, key: str, version: int, synced_version: int) -> bool:
        """Make the key dirty again so its sync rewrites its gist file (a file that failed its check):
        `synced_version` drops below `version` unless the register moved since it was read."""
        now = self._clock()
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(key)}, "sk": {"S": REGISTER_SK}},
                UpdateExpression=(
                    "SET synced_version = :behind, dirty_ns = :ns, dirty_at = if_not_exists(dirty_at, :now)"
                ),
                ConditionExpression="version = :v AND synced_version = :s",
                ExpressionAttributeValues={
                    ":behind": {"N": str(min(synced_version, version - 1))},
                    ":ns": {"S": namespace_of(key)},
                    ":now": {"N": f"{now:.3f}"},
                    ":v": {"N": str(version)},
                    ":s": {"N": str(synced_version)},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _sleep_unprocessed(self, attempt: int) -> None:
        self._pause(min(1.0, 0.05 * 2**attempt))

    def _expired(self, item: dict[str, Any]) -> bool:
        # DynamoDB deletes TTL-expired items lazily: an expired entry is gone as far as we are concerned.
        # An audited entry outlives its value's retention (`retained_until`) as the audit's record.
        expires = item.get("retained_until", item.get("expires_at", {})).get("N")
        return expires is not None and int(expires) <= self._clock()


def cancellation_reasons(error: ClientError) -> frozenset[str]:
    """The reason codes of a cancelled transaction (from the modelled field, else the message)."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return frozenset()
    reasons = error.response.get("CancellationReasons")
    if isinstance(reasons, list):
        return frozenset(str(r.get("Code")) for r in reasons if isinstance(r, dict))
    listed = re.search(r"\[([^\]]*)\]", str(error.response.get("Error", {}).get("Message", "")))
    return frozenset(c.strip() for c in listed.group(1).split(",")) if listed else frozenset()


def _reason_code(reason: object) -> str:
    """The code of one member's cancellation reason ("None" when that member was not the cause)."""
    return str(reason.get("Code", "None")) if isinstance(reason, dict) else "None"


def _failed_item(error: ClientError, index: int) -> dict[str, Any] | None:
    """The item (as found) of transaction member `index` if its condition failed, else None."""
    reasons = error.response.get("CancellationReasons")
    if not isinstance(reasons, list) or len(reasons) <= index:
        return None
    reason = reasons[index]
    if not isinstance(reason, dict) or reason.get("Code") != "ConditionalCheckFailed":
        return None
    item = reason.get("Item")
    return item if isinstance(item, dict) else {}


def _transient_cancellation(outcome: object) -> bool:
    """A cancellation caused only by throttling or a concurrent transaction (no failed condition)."""
    if not isinstance(outcome, ClientError):
        return False
    reasons = cancellation_reasons(outcome)
    return bool(reasons & TRANSIENT_REASONS) and "ConditionalCheckFailed" not in reasons


def _register(key: str, item: dict[str, Any]) -> Register:
    return Register(
        key=key,
        version=int(item["version"]["N"]),
        value_json=item["value_json"]["S"],
        digest=item["digest"]["S"],
        updated_at=item["updated_at"]["S"],
        deleted=bool(item.get("deleted", {}).get("BOOL", False)),
        fence=int(item["fence"]["N"]) if "fence" in item else None,
        gist_id=item.get("gist_id", {}).get("S"),
        synced_version=int(item.get("synced_version", {}).get("N", "0")),
        revision_sha=item.get("revision_sha", {}).get("S"),
        shard=item.get("shard", {}).get("S"),
        gist_file=item.get("gist_file", {}).get("S"),
        dirty_at=float(item["dirty_at"]["N"]) if "dirty_at" in item else None,
    )


def _entry(key: str, item: dict[str, Any]) -> VersionEntry:
    return VersionEntry(
        key=key,
        version=int(item["version"]["N"]),
        value_json=item["value_json"]["S"],
        digest=item["digest"]["S"],
        updated_at=item["updated_at"]["S"],
        deleted=bool(item.get("deleted", {}).get("BOOL", False)),
        revision=item.get("revision", {}).get("S"),
    )
