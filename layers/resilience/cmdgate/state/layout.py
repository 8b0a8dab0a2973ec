"""Where a state key lives in gists: namespaces, shard gists, file names, manifests, file documents.

Layout (format 2). Keys are grouped by namespace - the part of the key before its first `.` or
`:`; keys with neither share `_default` (no key can start with `_`, so no key's namespace clashes
with it). A namespace's keys fill shard gists `0, 1, ...` in the order they are first synced, at
most `StateKeysPerGist` files and `StateBytesPerGist` bytes each. A shard gist holds:

- `_manifest.json`: stack id, namespace, shard number, format version (no key begins with `_`, so
  no key's file can take its name); the gist's description says the same, so a person browsing a
  token's gists, or a recovery scan, tells deployments and shards apart;
- one file per key: `<key>.json` when gists are plain text, `<HMAC-SHA256(name key, key)>.json`
  when they are encrypted (key names can be sensitive too; the name key is KMS-protected, see
  `cmdgate.state.names`).

A file's document carries the version in clear (so a recovery scan can order revisions) and the
value in the codec's envelope, bound to the key (the key is the envelope's encryption context /
AAD). An encrypted file also carries its key's name sealed under one stack-wide context
(`KEY_NAME_CONTEXT`, so naming a file costs no KMS call of its own): a recovery that has lost the
registers (and the name key with them) reads which key a file holds without reversing the HMAC.
Inside the envelope the version and the deleted flag are repeated, so an edited version
number is caught on decryption. A deleted key's file is a tombstone - its deleted version, sealed
like any value - never an absent file.

Format 1 (one gist per key, file `state.json`) is still read and written for keys whose register
names such a gist; no new format-1 gist is created.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from cmdgate.crypto import Codec

FORMAT = 2
DEFAULT_NAMESPACE = "_default"
MANIFEST_FILE = "_manifest.json"
LEGACY_FILE = "state.json"  # format 1: the only file of a key's own gist
KEY_NAME_CONTEXT = {"cmdgate:purpose": "state-key-name"}  # the sealed key name of an encrypted file
_NAMESPACE_END = re.compile(r"[.:]")


def namespace_of(key: str) -> str:
    """The namespace of a key: the text before its first `.` or `:` (else `_default`)."""
    match = _NAMESPACE_END.search(key)
    return key[: match.start()] if match and match.start() > 0 else DEFAULT_NAMESPACE


@dataclass(frozen=True, order=True)
class ShardRef:
    """One shard gist of a namespace: `<namespace>/<number>`."""

    namespace: str
    number: int

    @property
    def id(self) -> str:
        """The shard's name in registers and leases."""
        return f"{self.namespace}/{self.number}"

    @classmethod
    def parse(cls, text: str) -> ShardRef:
        """The shard a register's `shard` attribute names."""
        namespace, _, number = text.rpartition("/")
        if not namespace or not number.isdigit():
            raise ValueError(f"not a shard reference: {text!r}")
        return cls(namespace, int(number))


def aad_for(key: str) -> dict[str, str]:
    """The encryption context every envelope of a key is bound to."""
    return {"cmdgate:state-key": key}


class FileNamer:
    """File names of keys in shard gists: the key itself in plain text, an HMAC of it when encrypted."""

    def __init__(self, name_key: bytes | None) -> None:
        self._name_key = name_key

    def file_of(self, key: str) -> str:
        """The file that holds `key` in its shard gist."""
        if self._name_key is None:
            return f"{key}.json"
        return hmac.new(self._name_key, key.encode("utf-8"), hashlib.sha256).hexdigest()[:40] + ".json"


def description(stack_id: str, shard: ShardRef) -> str:
    """What a shard gist says about itself in a token's gist list."""
    return f"cmdgate state (format {FORMAT}) · stack {stack_id} · namespace {shard.namespace} · shard {shard.number}"


def manifest(stack_id: str, shard: ShardRef) -> str:
    """The manifest file's content."""
    return json.dumps(
        {
            "cmdgate": "state shard",
            "format": FORMAT,
            "stack": stack_id,
            "namespace": shard.namespace,
            "shard": shard.number,
            "files": "one per key: the key's newest synced version, sealed to the key",
        },
        indent=2,
        sort_keys=True,
    )


@dataclass(frozen=True)
class FileVersion:
    """One version of a key as a gist file holds it, decoded and checked."""

    version: int
    deleted: bool
    value: Any


class InvalidStateFile(ValueError):
    """A gist file that is not a state document of this key (edited, swapped or corrupt)."""


def encode(
    codec: Codec,
    key: str,
    version: int,
    value_json: str,
    *,
    deleted: bool,
    updated_at: str,
    digest: str,
    plaintext: bool,
) -> str:
    """A key's file content at one version (format 2)."""
    sealed = json.dumps({"version": version, "deleted": deleted, "value": json.loads(value_json)})
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": version,
        "deleted": deleted,
        "updated_at": updated_at,
        "value": codec.encrypt(sealed.encode("utf-8"), aad_for(key)),
    }
    if plaintext:  # readable gists say which key and value they hold; encrypted ones do not
        document["key"] = key
        document["digest"] = digest
    else:  # the key's name, sealed: what a recovery reads instead of the HMAC it cannot reverse
        document["name"] = codec.encrypt(key.encode("utf-8"), KEY_NAME_CONTEXT)
    return json.dumps(document, indent=2, sort_keys=True)


def key_in(codec: Codec, content: str) -> str | None:
    """The key a file says it holds (format 2: in clear, or sealed; format 1: in clear), None if it says none.

    Only a claim: `decode` with that key is what proves the file is that key's (its envelope is bound to it).
    """
    from cmdgate.state.model import KEY_PATTERN

    try:
        document = json.loads(content)
    except ValueError:
        raise InvalidStateFile("not JSON") from None
    if not isinstance(document, dict):
        raise InvalidStateFile("not a state document")
    key = document.get("key")
    if key is None and isinstance(document.get("name"), dict):
        try:
            key = codec.decrypt(document["name"], KEY_NAME_CONTEXT).decode("utf-8")
        except Exception:  # noqa: BLE001 - any failure to open: the file names no key we can trust
            raise InvalidStateFile("the sealed key name does not open") from None
    if key is None:
        return None
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise InvalidStateFile("the file names no valid key")
    return key


def encode_legacy(
    codec: Codec, key: str, version: int, value_json: str, *, deleted: bool, updated_at: str, digest: str
) -> str:
    """A key's `state.json` in its own gist (format 1), for keys synced before shards existed."""
    document = {
        "key": key,
        "version": version,
        "updated_at": updated_at,
        "deleted": deleted,
        "digest": digest,
        "value": codec.encrypt(value_json.encode("utf-8"), aad_for(key)),
    }
    return json.dumps(document, indent=2, sort_keys=True)


def version_in(content: str) -> int:
    """The version a file says it holds, without decrypting (0 if it says none)."""
    try:
        document = json.loads(content)
    except ValueError:
        raise InvalidStateFile("not JSON") from None
    version = document.get("version", 0) if isinstance(document, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidStateFile("no version")
    return version


def decode(codec: Codec, key: str, content: str) -> FileVersion:
    """The version a file holds, decrypted (bound to `key`) and checked (format 1 or 2)."""
    from cmdgate.state.model import digest_of

    try:
        document = json.loads(content)
        if not isinstance(document, dict):
            raise InvalidStateFile("not a state document")
        version = document["version"]
        opened = json.loads(codec.decrypt(document["value"], aad_for(key)))
    except InvalidStateFile:
        raise
    except Exception:  # noqa: BLE001 - any failure to parse or open: not a document of this key
        raise InvalidStateFile("the file does not open as a state document of this key") from None
    if document.get("format") == FORMAT:
        if not isinstance(opened, dict) or opened.get("version") != version:
            raise InvalidStateFile("the sealed version differs from the file's")
        return FileVersion(int(version), bool(opened.get("deleted")), opened.get("value"))
    if digest_of(opened) != document.get("digest"):  # format 1: the digest is the check
        raise InvalidStateFile("the value fails its digest")
    return FileVersion(int(version), bool(document.get("deleted", False)), opened)
