"""Standard Webhooks signatures and each principal's signing secrets.

A delivery carries `webhook-id` (the same on every attempt), `webhook-timestamp` (epoch seconds
of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>`,
one `v1,` entry per valid secret separated by spaces, so a receiver holding either secret of a
rotation verifies it (https://www.standardwebhooks.com/).

Secrets (`whsec_` + base64 of 32 random bytes, the spec's form) are made by the admin route and
shown once. They must be usable to sign, so they are not hashed but sealed: each one is a KMS
envelope (`cmdgate.crypto.EnvelopeCipher`) bound to the principal and the secret's id, kept in
the control table item `whsec#<principal>`. A rotation keeps the previous secret valid for a
grace period (at most two are valid at once); a rotation while two are valid drops the older.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from cmdgate.crypto import Codec

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
CONTEXT_KEY = "cmdgate:webhook-secret"


def sign(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<signature>` entry of the Standard Webhooks `webhook-signature` header."""
    signed = webhook_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def signature_header(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one entry per valid secret."""
    return " ".join(sign(key, webhook_id, timestamp, body) for key in keys)


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret (receivers decode it the same way)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


@dataclass(frozen=True)
class CreatedSecret:
    """A new signing secret, shown once."""

    principal_id: str
    secret_id: str
    secret: str
    created_at: int
    previous_valid_until: int | None  # the replaced secret still signs until then

    def view(self) -> dict[str, Any]:
        """The admin route's answer."""
        return {
            "principal_id": self.principal_id,
            "secret_id": self.secret_id,
            "secret": self.secret,
            "created_at": self.created_at,
            "previous_valid_until": self.previous_valid_until,
        }


class SigningSecretsConflict(Exception):
    """Two rotations of one principal's secret raced; the loser may retry."""


class SigningSecrets:
    """The sealed signing secrets of each principal, in the control table."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        cipher: Callable[[], Codec],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._cipher = cipher
        self._clock = clock

    def rotate(self, principal_id: str, grace_s: int) -> CreatedSecret:
        """A new secret; the current one stays valid for `grace_s` seconds (0: revoked at once)."""
        now = int(self._clock())
        entries, revision = self._entries(principal_id)
        live = [e for e in entries if e.get("valid_until") is None or int(e["valid_until"]) > now]
        current = next((e for e in live if e.get("valid_until") is None), None)
        previous_until = now + grace_s if current is not None and grace_s > 0 else None
        kept = [{**current, "valid_until": previous_until}] if previous_until is not None and current else []
        secret_id = secrets.token_hex(8)
        raw = secrets.token_bytes(SECRET_BYTES)
        envelope = self._cipher().encrypt(raw, {CONTEXT_KEY: f"{principal_id}/{secret_id}"})
        new = {"id": secret_id, "envelope": envelope, "created_at": now, "valid_until": None}
        item = {
            "pk": {"S": _pk(principal_id)},
            "secrets_json": {"S": json.dumps([new, *kept], separators=(",", ":"))},
            "revision": {"N": str(revision + 1)},
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR revision = :read",
                ExpressionAttributeValues={":read": {"N": str(revision)}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise SigningSecretsConflict(principal_id) from None
            raise
        secret = SECRET_PREFIX + base64.b64encode(raw).decode()
        return CreatedSecret(principal_id, secret_id, secret, now, previous_until)

    def has_secret(self, principal_id: str) -> bool:
        """True if the principal has a valid secret (the edge refuses a callback without one)."""
        now = int(self._clock())
        entries, _ = self._entries(principal_id)
        return any(e.get("valid_until") is None or int(e["valid_until"]) > now for e in entries)

    def keys(self, principal_id: str) -> list[bytes]:
        """The HMAC keys of the principal's valid secrets, newest first (opened through KMS)."""
        now = int(self._clock())
        entries, _ = self._entries(principal_id)
        cipher = self._cipher()
        return [
            cipher.decrypt(e["envelope"], {CONTEXT_KEY: f"{principal_id}/{e['id']}"})
            for e in entries
            if e.get("valid_until") is None or int(e["valid_until"]) > now
        ]

    def _entries(self, principal_id: str) -> tuple[list[dict[str, Any]], int]:
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": _pk(principal_id)}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return [], 0
        return json.loads(item["secrets_json"]["S"]), int(item["revision"]["N"])


def _pk(principal_id: str) -> str:
    return f"whsec#{principal_id}"
