"""Three moto behaviours that made the local stack's memory and time grow with its tables and queues.

1. Every model instance is kept forever. moto's `BaseModel.__new__` appends each instance to its
   class's `instances_tracked` list, for the moto server's model dashboard (`/moto-api/data.json`,
   unused here). DynamoDB `Item`s and tables, SQS `Message`s are models, and moto makes copies of
   them all the time: each query and scan result, each received message, each transaction's
   backup. None was ever freed: 250 state keys left the stack process at 908 MiB RSS.
   `install()` stops the tracking (S3's models excepted: moto's S3 reset closes files through it).

2. TransactWriteItems copies whole tables. moto backs up a transaction by `copy.deepcopy` of the
   table each part names (once per part: a three-part write of two tables copies one of them
   twice) and, on a cancelled transaction, puts the copies in place of the tables. The cost grows
   with the tables, not with the write: a state write held moto's lock about 260 ms at 250 keys,
   and with (1) each copy stayed in memory. `install()` makes moto's table backup an identity (its
   rollback then puts each table back in its own place) and snapshots only the items the
   transaction names, restoring them when moto raises. moto's requests are serialized
   (moto_endpoint.serialized), so nothing else sees or changes those items in between.

3. An SQS receive scans the whole queue three times per message it returns. moto checks each
   received message's retention by computing every attribute of its queue - the approximate
   counts included, each a scan of all its messages - and each message's `visible`/`delayed`
   reads the clock through datetime arithmetic. With 1,000 messages in flight (a backlog being
   retried with backoff), one ten-message receive took about 2 s of the stack process's CPU
   (long polls do not take moto's lock, but they hold the interpreter), and the API front, which
   shares that process, slowed to under one request a second. `install()` reads the retention
   period directly and makes the scans read the clock once each (`time.time()`, what moto's
   `unix_time` computes when time is not frozen, which it never is here).

Figures: docs/design.md, "Local stack differences from AWS".
"""

from __future__ import annotations

import copy
import functools
import time
import types
from typing import Any

from moto.core.common_models import BaseModel
from moto.core.model_instances import reset_model_data
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.sqs.models import Message, Queue, SQSBackend

# (table, hash key, range key or None) -> the item as it was (a copy), or None if there was none
Snapshot = dict[tuple[str, DynamoType, DynamoType | None], Item | None]
_PARTS = ("ConditionCheck", "Put", "Delete", "Update")


def _deepcopy_but_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """copy.deepcopy, except a Table is its own backup (the items it holds are snapshotted instead)."""
    if isinstance(value, Table):
        return value
    return copy.deepcopy(value, memo)


def _key_of(table: Table, part: str, op: dict[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
    attrs = op.get("Item") if part == "Put" else op.get("Key")
    if not isinstance(attrs, dict) or not isinstance(attrs.get(table.hash_key_attr), dict):
        return None
    hash_key = DynamoType(attrs[table.hash_key_attr])
    if table.range_key_attr is None:
        return hash_key, None
    if not isinstance(attrs.get(table.range_key_attr), dict):
        return None
    return hash_key, DynamoType(attrs[table.range_key_attr])


def snapshot(backend: DynamoDBBackend, transact_items: Any) -> Snapshot:
    """A copy of each item the transaction's well-formed parts name (moto refuses the others itself)."""
    saved: Snapshot = {}
    for entry in transact_items if isinstance(transact_items, list) else ():
        if not isinstance(entry, dict):
            continue
        for part in _PARTS:
            op = entry.get(part)
            if not isinstance(op, dict) or not isinstance(op.get("TableName"), str):
                continue
            table = backend.tables.get(op["TableName"])
            if table is None:
                continue
            key = _key_of(table, part, op)
            if key is None or (table.name, *key) in saved:
                continue
            hash_key, range_key = key
            rows: Any = table.items.get(hash_key)
            current: Item | None = rows if range_key is None else (rows or {}).get(range_key)
            saved[(table.name, hash_key, range_key)] = copy.deepcopy(current)
    return saved


def restore(backend: DynamoDBBackend, saved: Snapshot) -> None:
    """Put every snapshotted item back as it was (or away, if it did not exist)."""
    for (name, hash_key, range_key), item in saved.items():
        table = backend.tables.get(name)
        if table is None:
            continue
        items: dict[Any, Any] = table.items
        if range_key is None:
            if item is None:
                items.pop(hash_key, None)
            else:
                items[hash_key] = item
        elif item is None:
            rows = items.get(hash_key)
            if rows is not None:
                rows.pop(range_key, None)
                if not rows:
                    del items[hash_key]
        else:
            items[hash_key][range_key] = item


_ORIGINAL = DynamoDBBackend.transact_write_items
_ORIGINAL_NEW = BaseModel.__dict__["__new__"]
_SQS_ORIGINALS: dict[tuple[type, str], Any] = {
    (Queue, "messages"): Queue.__dict__["messages"],
    (Queue, "approximate_number_of_messages"): Queue.__dict__["approximate_number_of_messages"],
    (Queue, "approximate_number_of_messages_delayed"): Queue.__dict__["approximate_number_of_messages_delayed"],
    (Queue, "approximate_number_of_messages_not_visible"): Queue.__dict__["approximate_number_of_messages_not_visible"],
    (SQSBackend, "is_message_valid_based_on_retention_period"): SQSBackend.__dict__[
        "is_message_valid_based_on_retention_period"
    ],
}


def _now_ms() -> float:
    return time.time() * 1000


def _visible_messages(queue: Queue) -> list[Message]:
    """moto's `Queue.messages` (visible and not delayed), reading the clock once."""
    now = _now_ms()
    return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]


def _delayed_count(queue: Queue) -> int:
    now = _now_ms()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _not_visible_count(queue: Queue) -> int:
    now = _now_ms()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _within_retention(backend: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto's retention check without computing every attribute of the queue."""
    retention_s = int(backend.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return retention_s + message.sent_timestamp / 1000 > time.time()  # type: ignore[operator]


def _install_sqs() -> None:
    Queue.messages = property(_visible_messages)  # type: ignore[assignment, method-assign]
    Queue.approximate_number_of_messages = property(lambda q: len(_visible_messages(q)))  # type: ignore[assignment, method-assign]
    Queue.approximate_number_of_messages_delayed = property(_delayed_count)  # type: ignore[assignment, method-assign]
    Queue.approximate_number_of_messages_not_visible = property(_not_visible_count)  # type: ignore[assignment, method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[assignment, method-assign]


def _untracked_new(cls: type[BaseModel], *args: Any, **kwargs: Any) -> BaseModel:
    """BaseModel.__new__ without keeping the instance (S3's models still tracked)."""
    instance: BaseModel = super(BaseModel, cls).__new__(cls)
    if cls.__module__.startswith("moto.s3."):
        cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
    return instance


def installed() -> bool:
    """Whether this process's moto is patched."""
    return DynamoDBBackend.transact_write_items is not _ORIGINAL


def install() -> None:
    """Patch moto in this process (once): no instance tracking, transactions rolled back item by item,
    SQS receives that scan a queue once."""
    if installed():
        return
    BaseModel.__new__ = staticmethod(_untracked_new)  # type: ignore[method-assign]
    reset_model_data()
    original = _ORIGINAL

    @functools.wraps(original)
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = snapshot(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            restore(self, saved)
            raise

    # The module's `copy` serves only the transaction backup and update_item's copy of one item.
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=_deepcopy_but_tables, copy=copy.copy)  # type: ignore[assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _install_sqs()


def uninstall() -> None:
    """Give moto its own behaviour back (for tests)."""
    BaseModel.__new__ = _ORIGINAL_NEW  # type: ignore[method-assign]
    dynamodb_models.copy = copy
    DynamoDBBackend.transact_write_items = _ORIGINAL  # type: ignore[method-assign]
    for (owner, name), original in _SQS_ORIGINALS.items():
        setattr(owner, name, original)
