"""The shard directory: which shard gists a namespace has, how full each is, and its gist id.

Items in the state table: `pk = "shard#<namespace>"`, `sk = "<6-digit shard number>"`, with
`files` and `bytes` counters and, once the gist exists, `gist_id`. A key joins the newest shard
of its namespace with one conditional update on the counts it read (many keys at once: as many as
fit); when that shard is full the next one is created with a conditional put, so
concurrent syncs (the state_sync function and write-through in api instances) never overfill a
shard or create one twice. Bytes are counted when a key joins, from its file then: a value that
grows later is not moved (a shard can outgrow `StateBytesPerGist` by its keys' growth).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cmdgate.aws_errors import is_condition_failure
from cmdgate.state.layout import ShardRef

MAX_PLACEMENT_ATTEMPTS = 8


def _pk(namespace: str) -> str:
    return f"shard#{namespace}"


def _sk(number: int) -> str:
    return f"{number:06d}"


class ShardDirectory:
    """Places keys in shards and remembers each shard's gist."""

    def __init__(self, client: Any, table: str, *, keys_per_gist: int = 50, bytes_per_gist: int = 5_000_000) -> None:
        self._client = client
        self._table = table
        self.keys_per_gist = keys_per_gist
        self.bytes_per_gist = bytes_per_gist

    def place(self, namespace: str, size: int) -> ShardRef:
        """Count one more file of `size` bytes in the namespace's newest shard with room (a new one if full)."""
        return self.place_many(namespace, [size])[0]

    def place_many(self, namespace: str, sizes: list[int]) -> list[ShardRef]:
        """Shards for files of these sizes, in order: as many as fit join the newest shard in one
        conditional update (on the counts read), the rest start the next shard."""
        placed: list[ShardRef] = []
        attempts = 0
        while len(placed) < len(sizes):
            attempts += 1
            if attempts > MAX_PLACEMENT_ATTEMPTS + len(sizes):
                raise RuntimeError(f"no shard of {namespace!r} took its files after {attempts - 1} attempts")
            pending = sizes[len(placed) :]
            newest = self._newest(namespace)
            if newest is not None:
                number, files, used = newest
                taken = self._fitting(pending, files, used)
                if taken and self._join(namespace, number, files, used, taken):
                    placed.extend([ShardRef(namespace, number)] * len(taken))
                    continue
                if taken:
                    continue  # the counts moved under us: read them again
            number = 0 if newest is None else newest[0] + 1
            taken = self._fitting(pending, 0, 0) or pending[:1]  # a file larger than a gist gets one alone
            if self._create(namespace, number, taken):
                placed.extend([ShardRef(namespace, number)] * len(taken))
        return placed

    def _fitting(self, sizes: list[int], files: int, used: int) -> list[int]:
        """The leading files that fit beside `files` files of `used` bytes."""
        taken: list[int] = []
        for size in sizes:
            if files + len(taken) + 1 > self.keys_per_gist or used + sum(taken) + size > self.bytes_per_gist:
                break
            taken.append(size)
        return taken

    def release(self, shard: ShardRef, size: int) -> None:
        """Give back a placement that was not used (its key was placed elsewhere first)."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": _pk(shard.namespace)}, "sk": {"S": _sk(shard.number)}},
            UpdateExpression="ADD files :minus_one, #bytes :minus_size",
            ExpressionAttributeNames={"#bytes": "bytes"},
            ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":minus_size": {"N": str(-size)}},
        )

    def gist_of(self, shard: ShardRef) -> str | None:
        """The shard's gist id, once it has one."""
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": _pk(shard.namespace)}, "sk": {"S": _sk(shard.number)}},
            ConsistentRead=True,
        ).get("Item")
        return item.get("gist_id", {}).get("S") if item else None

    def remember_gist(self, shard: ShardRef, gist_id: str) -> str:
        """Record the shard's new gist unless it has one already; returns the shard's gist."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(shard.namespace)}, "sk": {"S": _sk(shard.number)}},
                UpdateExpression="SET gist_id = :gist",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(gist_id)",
                ExpressionAttributeValues={":gist": {"S": gist_id}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            existing = (error.response.get("Item") or {}).get("gist_id", {}).get("S")
            return str(existing or gist_id)
        return gist_id

    def adopt(self, shard: ShardRef, gist_id: str, files: int, size: int) -> bool:
        """Record a shard found in its gist (a recovery) unless the directory has it; True if recorded."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": _pk(shard.namespace)},
                    "sk": {"S": _sk(shard.number)},
                    "files": {"N": str(files)},
                    "bytes": {"N": str(size)},
                    "gist_id": {"S": gist_id},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def _newest(self, namespace: str) -> tuple[int, int, int] | None:
        """The newest shard of the namespace: (number, files, bytes)."""
        answer = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _pk(namespace)}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = answer.get("Items", [])
        if not items:
            return None
        item = items[0]
        return int(item["sk"]["S"]), int(item.get("files", {}).get("N", "0")), int(item.get("bytes", {}).get("N", "0"))

    def _join(self, namespace: str, number: int, files: int, used: int, sizes: list[int]) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(namespace)}, "sk": {"S": _sk(number)}},
                UpdateExpression="ADD files :n, #bytes :size",
                ConditionExpression="files = :files AND #bytes = :used",
                ExpressionAttributeNames={"#bytes": "bytes"},
                ExpressionAttributeValues={
                    ":n": {"N": str(len(sizes))},
                    ":size": {"N": str(sum(sizes))},
                    ":files": {"N": str(files)},
                    ":used": {"N": str(used)},
                },
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def _create(self, namespace: str, number: int, sizes: list[int]) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(namespace)}, "sk": {"S": _sk(number)}},
                UpdateExpression="SET files = :n, #bytes = :size",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeNames={"#bytes": "bytes"},
                ExpressionAttributeValues={":n": {"N": str(len(sizes))}, ":size": {"N": str(sum(sizes))}},
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True
