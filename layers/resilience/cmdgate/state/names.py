"""The key that names encrypted gist files: made once by KMS, kept encrypted in the state table.

File names of encrypted shard gists are an HMAC of the state key (cmdgate.state.layout), so a
gist shows no key names. The HMAC key is a KMS data key made under the state KMS key with its
own encryption context; only its encrypted form is stored (item `pk = "meta#gist-file-names"`,
`sk = "key"`), written once with a condition so every instance, however many start at once,
uses the same one. Each instance asks KMS to decrypt it once.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

NAME_KEY_PK = "meta#gist-file-names"
NAME_KEY_SK = "key"
NAME_KEY_CONTEXT = {"cmdgate:purpose": "gist-file-names"}


class FileNameKey:
    """Loads (or, the first time anywhere, makes) the HMAC key for gist file names."""

    def __init__(self, dynamodb: Any, table: str, kms: Any, key_id: str) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._kms = kms
        self._key_id = key_id
        self._lock = threading.Lock()
        self._key: bytes | None = None

    def get(self) -> bytes:
        """The 32-byte name key."""
        with self._lock:
            if self._key is None:
                self._key = self._load()
            return self._key

    def _load(self) -> bytes:
        item_key = {"pk": {"S": NAME_KEY_PK}, "sk": {"S": NAME_KEY_SK}}
        item = self._dynamodb.get_item(TableName=self._table, Key=item_key, ConsistentRead=True).get("Item")
        if item is None:
            made = self._kms.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=NAME_KEY_CONTEXT
            )
            try:
                self._dynamodb.update_item(
                    TableName=self._table,
                    Key=item_key,
                    UpdateExpression="SET edk = :edk",
                    ConditionExpression="attribute_not_exists(pk)",
                    ExpressionAttributeValues={":edk": {"B": made["CiphertextBlob"]}},
                )
                return bytes(made["Plaintext"])
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
            # Another instance stored its key first: use that one.
            item = self._dynamodb.get_item(TableName=self._table, Key=item_key, ConsistentRead=True)["Item"]
        opened = self._kms.decrypt(
            CiphertextBlob=item["edk"]["B"], EncryptionContext=NAME_KEY_CONTEXT, KeyId=self._key_id
        )
        return bytes(opened["Plaintext"])
