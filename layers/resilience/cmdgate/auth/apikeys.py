"""API keys: shown once, stored only as a SHA-256 hash, looked up by that hash."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cmdgate.auth.permissions import ADMIN, Principal

API_KEY_PREFIX = "cg_"
# An item (not a key: no hash is ever this string) whose existence means the first admin key was created.
BOOTSTRAP_MARKER = "bootstrap#admin"
MAX_TOKEN_LENGTH = 512


def generate_api_key() -> str:
    """A new random API key (256 bits of entropy)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """The stored form of a key: its SHA-256 hex digest (keys are random, so no salt is needed)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """An issued key as stored (never the key itself)."""

    key_id: str
    key_hash: str
    name: str
    permissions: tuple[str, ...]
    rate_limit: dict[str, int] = field(default_factory=dict)
    status: str = "active"
    created_at: int = 0
    expires_at: int | None = None

    def is_usable(self, now: float) -> bool:
        """Active and not past its expiry."""
        return self.status == "active" and (self.expires_at is None or now < self.expires_at)

    def principal(self) -> Principal:
        """The principal this key authenticates."""
        return Principal(
            principal_id=f"key:{self.key_id}",
            permissions=self.permissions,
            kind="api_key",
            key_id=self.key_id,
            rate_limit=dict(self.rate_limit),
        )

    def public_view(self) -> dict[str, Any]:
        """What `GET /v1/admin/keys` shows (never the hash)."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "permissions": list(self.permissions),
            "rate_limit": dict(self.rate_limit),
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item."""
        item: dict[str, Any] = {
            "key_hash": self.key_hash,
            "key_id": self.key_id,
            "name": self.name,
            "permissions": list(self.permissions),
            "rate_limit": dict(self.rate_limit),
            "status": self.status,
            "created_at": self.created_at,
        }
        if self.expires_at is not None:
            item["expires_at"] = self.expires_at
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ApiKeyRecord:
        """Parse a DynamoDB item (numbers arrive as Decimal)."""
        expires = item.get("expires_at")
        return cls(
            key_id=str(item["key_id"]),
            key_hash=str(item["key_hash"]),
            name=str(item.get("name", "")),
            permissions=tuple(str(p) for p in item.get("permissions", [])),
            rate_limit={str(k): int(v) for k, v in (item.get("rate_limit") or {}).items()},
            status=str(item.get("status", "active")),
            created_at=int(item.get("created_at", 0)),
            expires_at=int(expires) if expires is not None else None,
        )


class BootstrapRefused(Exception):
    """The deployment already has its first admin key."""


class ApiKeyStore:
    """API-key principals in the keys table (hash key `key_hash`, GSI `by_key_id`)."""

    def __init__(
        self,
        table: Any = None,
        *,
        table_factory: Callable[[], Any] | None = None,
        reader: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        """`table` (a DynamoDB Table), or `table_factory` to build it on first use; `reader`, when given,
        reads one item by its `key_hash` (what the authorizer does, without building the Table resource)."""
        if table is not None and table_factory is not None:
            raise TypeError("give table or table_factory, not both")
        self._table_factory = table_factory or (lambda: table)
        self._reader = reader

    @cached_property
    def _table(self) -> Any:
        return self._table_factory()

    def find_by_key(self, api_key: str) -> ApiKeyRecord | None:
        """The record for a presented key, or None; a consistent read so revocation is seen at once."""
        if not api_key or len(api_key) > MAX_TOKEN_LENGTH:
            return None
        key_hash = hash_api_key(api_key)
        if self._reader is not None:
            item = self._reader(key_hash)
        else:
            item = self._table.get_item(Key={"key_hash": key_hash}, ConsistentRead=True).get("Item")
        return ApiKeyRecord.from_item(item) if item else None

    def list_page(
        self, limit: int, start_key: dict[str, Any] | None
    ) -> tuple[list[ApiKeyRecord], dict[str, Any] | None]:
        """One page of issued keys (the bootstrap marker is not a key) and the key to resume from."""
        kwargs: dict[str, Any] = {"Limit": limit, "FilterExpression": "attribute_exists(key_id)"}
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        response = self._table.scan(**kwargs)
        records = [ApiKeyRecord.from_item(item) for item in response.get("Items", [])]
        return records, response.get("LastEvaluatedKey")

    def revoke(self, key_id: str) -> bool:
        """Mark a key revoked; False if no key has that id. The authorizer cache may honour it for up to its TTL."""
        found = self._table.query(
            IndexName="by_key_id",
            KeyConditionExpression="key_id = :id",
            ExpressionAttributeValues={":id": key_id},
        ).get("Items", [])
        if not found:
            return False
        self._table.update_item(
            Key={"key_hash": found[0]["key_hash"]},
            UpdateExpression="SET #s = :revoked, revoked_at = :now",
            ConditionExpression="attribute_exists(key_hash)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":revoked": "revoked", ":now": int(time.time())},
        )
        return True

    def bootstrap_admin(
        self, name: str = "bootstrap-admin", *, api_key: str | None = None, rate_limit: dict[str, int] | None = None
    ) -> tuple[str, ApiKeyRecord]:
        """Create the first admin key of a deployment; raises BootstrapRefused once one was created."""
        key = api_key or generate_api_key()
        record = self._new_record(key, name, [ADMIN], rate_limit or {"quota": 1000, "window_s": 60}, None)
        client = self._table.meta.client
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": {"key_hash": BOOTSTRAP_MARKER, "created_at": record.created_at},
                            "ConditionExpression": "attribute_not_exists(key_hash)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": record.to_item(),
                            "ConditionExpression": "attribute_not_exists(key_hash)",
                        }
                    },
                ]
            )
        except client.exceptions.TransactionCanceledException:
            raise BootstrapRefused("an admin key was already bootstrapped for this deployment") from None
        return key, record

    def create(
        self,
        name: str,
        permissions: list[str],
        rate_limit: dict[str, int] | None = None,
        *,
        api_key: str | None = None,
        expires_at: int | None = None,
    ) -> tuple[str, ApiKeyRecord]:
        """Issue a key (or register a given one); returns the key, shown only this once."""
        key = api_key or generate_api_key()
        record = self._new_record(key, name, permissions, rate_limit or {}, expires_at)
        self._table.put_item(Item=record.to_item(), ConditionExpression="attribute_not_exists(key_hash)")
        return key, record

    @staticmethod
    def _new_record(
        key: str, name: str, permissions: list[str], rate_limit: dict[str, int], expires_at: int | None
    ) -> ApiKeyRecord:
        return ApiKeyRecord(
            key_id=uuid.uuid4().hex[:16],
            key_hash=hash_api_key(key),
            name=name,
            permissions=tuple(permissions),
            rate_limit=rate_limit,
            created_at=int(time.time()),
            expires_at=expires_at,
        )
