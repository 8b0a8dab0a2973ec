"""Envelope encryption of state values: a KMS data key per state key, AES-256-GCM per value.

A secret gist is readable by anyone who has its URL, so the value written there is
an envelope, not the value itself:

    {"v": 1, "alg": "AES-256-GCM", "kid": <KMS key ARN>, "edk": b64(encrypted data key),
     "iv": b64(12-byte nonce), "ct": b64(ciphertext || 16-byte tag)}

Binding. The caller's `aad` (e.g. ``{"cmdgate:state-key": key}``), merged with the
cipher's fixed `context`, is the KMS encryption context of the data key AND part of
the AES-GCM associated data (RFC 8785 canonical JSON of v, alg, kid and the context).
An envelope copied to another state key, or any edited field, fails to decrypt.

KMS calls. `encrypt` reuses one data key per context for at most `data_key_reuse_s`
seconds and `max_messages_per_data_key` messages, so a busy key costs one
GenerateDataKey per window, not one per write. `decrypt` keeps a small bounded cache of
data keys it has had KMS decrypt, keyed by (edk, context), so reading many versions
written under one data key costs one Decrypt. Each Decrypt names our key (`KeyId`),
so an envelope whose data key was made under some other KMS key is refused even if
that key's policy would let us use it.

Nonce bound. Nonces are random 96-bit values. NIST SP 800-38D caps random-nonce use
at 2**32 messages per key (collision probability <= 2**-32); we cap a data key at
4096 (2**12) messages by default and never allow more than 2**20, so the chance
of any nonce repeating under one data key is below q**2 / 2**97: about 2**-73 at the
default and 2**-57 at the ceiling.

Plain text (`PlaintextCodec`) is an explicit opt-in with the same interface; the two
codecs refuse each other's envelopes so a reader configured for encryption is never
silently downgraded. Nothing here logs, and no error message carries key material,
plaintext or ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import rfc8785
from botocore.exceptions import BotoCoreError, ClientError

from cmdgate.errors import DependencyUnavailable

if TYPE_CHECKING:
    # Imported where a key is made or used: the api function's command path never seals anything, and
    # cryptography's bindings are a tenth of the `import boto3` floor on a cold start.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _aesgcm(raw_key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(raw_key)


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


ENVELOPE_VERSION = 1
ALG_AES_GCM = "AES-256-GCM"
ALG_NONE = "none"

NONCE_BYTES = 12  # 96 bits: the only GCM nonce size without an extra GHASH step
TAG_BYTES = 16
DATA_KEY_BYTES = 32
DEFAULT_MAX_MESSAGES_PER_DATA_KEY = 4096  # 2**12: nonce-collision chance ~2**-73 (see module docstring)
MAX_MESSAGES_PER_DATA_KEY_CEILING = 2**20  # a hard ceiling whatever the caller asks: ~2**-57
_MAX_ENCRYPT_CONTEXTS = 64  # data keys held for reuse; the least recently used context is dropped first

_AES_FIELDS = frozenset({"v", "alg", "kid", "edk", "iv", "ct"})
_PLAIN_FIELDS = frozenset({"v", "alg", "value"})

# KMS answers that mean "this edk/context/key does not go together": tampering or a copied envelope.
_KMS_REFUSALS = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})

Envelope = dict[str, Any]
ContextSource = Mapping[str, str] | Callable[[], Mapping[str, str]] | None
CodecMode = Literal["kms", "plaintext"]


class CryptoError(Exception):
    """Base of the errors of this module."""


class DecryptionFailed(CryptoError):
    """The envelope cannot be opened: tampered, bound to another context, or made with another key."""


class InvalidEnvelope(DecryptionFailed):
    """The envelope is malformed, of an unknown version, or of an algorithm this codec refuses."""


class KeyServiceUnavailable(CryptoError, DependencyUnavailable):
    """KMS could not be used (throttled, down, key disabled, access denied): 503, worth retrying later."""


class Codec(Protocol):
    """What the state store needs: turn bytes into a JSON-ready envelope and back, bound to `aad`."""

    alg: str

    def encrypt(self, plaintext: bytes, aad: Mapping[str, str]) -> Envelope:
        """An envelope of `plaintext` bound to `aad`."""
        ...

    def decrypt(self, envelope: Mapping[str, Any], aad: Mapping[str, str]) -> bytes:
        """The plaintext of `envelope`, which must have been made with the same `aad`."""
        ...


@dataclass
class _DataKey:
    # The AESGCM object holds the key; we keep no other reference to the raw bytes we made it from.
    aead: AESGCM
    edk: bytes
    kid: str
    created_at: float
    uses: int = 0


class EnvelopeCipher:
    """AES-256-GCM under KMS data keys, with bounded data-key reuse and a bounded decrypt cache."""

    alg = ALG_AES_GCM

    def __init__(
        self,
        kms_client: Any,
        key_id: str,
        *,
        context: ContextSource = None,
        data_key_reuse_s: float = 300.0,
        max_messages_per_data_key: int = DEFAULT_MAX_MESSAGES_PER_DATA_KEY,
        decrypt_cache_size: int = 64,
        decrypt_cache_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not key_id:
            raise ValueError("key_id is required")
        if data_key_reuse_s < 0 or decrypt_cache_s < 0:
            raise ValueError("durations must not be negative")
        if not 1 <= max_messages_per_data_key <= MAX_MESSAGES_PER_DATA_KEY_CEILING:
            raise ValueError(f"max_messages_per_data_key must be in [1, {MAX_MESSAGES_PER_DATA_KEY_CEILING}]")
        if decrypt_cache_size < 0:
            raise ValueError("decrypt_cache_size must not be negative")
        self._kms = kms_client
        self._key_id = key_id
        self._context = context
        self._reuse_s = data_key_reuse_s
        self._max_messages = max_messages_per_data_key
        self._decrypt_cache_size = decrypt_cache_size
        self._decrypt_cache_s = decrypt_cache_s
        self._clock = clock
        # Both caches are bounded LRUs: a Lambda environment that touches many state keys
        # keeps only the recent ones, and the lock makes them safe for threaded callers.
        self._encrypt_keys: OrderedDict[bytes, _DataKey] = OrderedDict()
        self._decrypt_keys: OrderedDict[tuple[bytes, bytes], tuple[AESGCM, float]] = OrderedDict()
        self._lock = threading.Lock()

    def encrypt(self, plaintext: bytes, aad: Mapping[str, str]) -> Envelope:
        """An AES-256-GCM envelope of `plaintext` whose data key and tag are bound to `aad`."""
        if not isinstance(plaintext, bytes | bytearray | memoryview):
            raise TypeError("plaintext must be bytes")
        context = self._full_context(aad)
        context_id = _canonical(context)
        data_key = self._data_key_for(context, context_id)
        # A fresh random nonce for every message, even under a reused data key.
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = data_key.aead.encrypt(nonce, bytes(plaintext), _associated_data(data_key.kid, context))
        return {
            "v": ENVELOPE_VERSION,
            "alg": ALG_AES_GCM,
            "kid": data_key.kid,
            "edk": _b64(data_key.edk),
            "iv": _b64(nonce),
            "ct": _b64(ciphertext),
        }

    def decrypt(self, envelope: Mapping[str, Any], aad: Mapping[str, str]) -> bytes:
        """The plaintext of an AES-256-GCM envelope made with the same `aad`; `DecryptionFailed` otherwise."""
        kid, edk, nonce, ciphertext = _parse_aes_envelope(envelope)
        context = self._full_context(aad)
        aead = self._aead_for(edk, context)
        try:
            return aead.decrypt(nonce, ciphertext, _associated_data(kid, context))
        except _invalid_tag():
            # `from None`: the cause adds nothing and the message must stay free of content.
            raise DecryptionFailed("the envelope failed authentication (tampered or bound elsewhere)") from None

    def clear_caches(self) -> None:
        """Forget every cached data key (e.g. after a key-policy change)."""
        with self._lock:
            self._encrypt_keys.clear()
            self._decrypt_keys.clear()

    def _full_context(self, aad: Mapping[str, str]) -> dict[str, str]:
        base = self._context() if callable(self._context) else self._context
        context: dict[str, str] = {}
        for source in (base or {}, aad):
            _check_context(source)
            for name, value in source.items():
                # Never let a caller's aad silently override a fixed entry (or the reverse).
                if context.get(name, value) != value:
                    raise ValueError(f"encryption context entry {name!r} is given two different values")
                context[name] = value
        if not context:
            raise ValueError("an envelope must be bound to a non-empty context (e.g. its state key)")
        return context

    def _data_key_for(self, context: dict[str, str], context_id: bytes) -> _DataKey:
        now = self._clock()
        with self._lock:
            cached = self._encrypt_keys.get(context_id)
            if cached is not None and 0 <= now - cached.created_at < self._reuse_s and cached.uses < self._max_messages:
                cached.uses += 1
                self._encrypt_keys.move_to_end(context_id)
                return cached
        try:
            answer = self._kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context)
        except (ClientError, BotoCoreError) as exc:
            raise KeyServiceUnavailable(f"KMS GenerateDataKey failed ({_error_code(exc)})") from exc
        raw_key = answer["Plaintext"]
        if len(raw_key) != DATA_KEY_BYTES:
            raise KeyServiceUnavailable("KMS returned a data key of an unexpected size")
        data_key = _DataKey(_aesgcm(raw_key), answer["CiphertextBlob"], answer["KeyId"], now, uses=1)
        del raw_key, answer  # drop our references to the raw key as soon as the AESGCM object has it
        if self._reuse_s > 0 and self._max_messages > 1:
            with self._lock:
                self._encrypt_keys[context_id] = data_key
                self._encrypt_keys.move_to_end(context_id)
                while len(self._encrypt_keys) > _MAX_ENCRYPT_CONTEXTS:
                    self._encrypt_keys.popitem(last=False)
        return data_key

    def _aead_for(self, edk: bytes, context: dict[str, str]) -> AESGCM:
        # Keyed by edk AND context: KMS, not the cache, decides whether an edk opens under a context.
        cache_key = (edk, _canonical(context))
        now = self._clock()
        with self._lock:
            cached = self._decrypt_keys.get(cache_key)
            if cached is not None and 0 <= now - cached[1] < self._decrypt_cache_s:
                self._decrypt_keys.move_to_end(cache_key)
                return cached[0]
        try:
            answer = self._kms.decrypt(CiphertextBlob=edk, EncryptionContext=context, KeyId=self._key_id)
        except ClientError as exc:
            if _error_code(exc) in _KMS_REFUSALS:
                raise DecryptionFailed(f"KMS refused the data key ({_error_code(exc)})") from None
            raise KeyServiceUnavailable(f"KMS Decrypt failed ({_error_code(exc)})") from exc
        except BotoCoreError as exc:
            raise KeyServiceUnavailable(f"KMS Decrypt failed ({_error_code(exc)})") from exc
        raw_key = answer["Plaintext"]
        if len(raw_key) != DATA_KEY_BYTES:
            raise DecryptionFailed("the data key has an unexpected size")
        aead = _aesgcm(raw_key)
        del raw_key, answer
        if self._decrypt_cache_size > 0 and self._decrypt_cache_s > 0:
            with self._lock:
                self._decrypt_keys[cache_key] = (aead, now)
                self._decrypt_keys.move_to_end(cache_key)
                while len(self._decrypt_keys) > self._decrypt_cache_size:
                    self._decrypt_keys.popitem(last=False)
        return aead


class PlaintextCodec:
    """The explicit opt-in: the value stored as UTF-8 text in a versioned envelope, not encrypted."""

    alg = ALG_NONE

    def encrypt(self, plaintext: bytes, aad: Mapping[str, str]) -> Envelope:
        """A plain-text envelope of `plaintext` (which must be UTF-8); `aad` is checked but not bound."""
        _check_context(aad)
        try:
            text = bytes(plaintext).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("plain-text mode stores UTF-8 text only") from None
        return {"v": ENVELOPE_VERSION, "alg": ALG_NONE, "value": text}

    def decrypt(self, envelope: Mapping[str, Any], aad: Mapping[str, str]) -> bytes:
        """The bytes of a plain-text envelope; encrypted envelopes are refused, not guessed at."""
        _check_context(aad)
        _check_header(envelope, ALG_NONE, _PLAIN_FIELDS)
        value = envelope["value"]
        if not isinstance(value, str):
            raise InvalidEnvelope("envelope field 'value' must be a string")
        return value.encode("utf-8")


def codec_for(mode: CodecMode, kms_client: Any = None, key_id: str | None = None, **options: Any) -> Codec:
    """The codec for a configured mode: "kms" (default in settings) or the "plaintext" opt-in."""
    if mode == "kms":
        if kms_client is None or not key_id:
            raise ValueError("kms mode needs a KMS client and a key id")
        return EnvelopeCipher(kms_client, key_id, **options)
    if mode == "plaintext":
        return PlaintextCodec()
    raise ValueError(f"unknown codec mode {mode!r} (expected 'kms' or 'plaintext')")


def is_envelope(obj: object) -> bool:
    """Whether `obj` has the shape of one of our envelopes (any version; no cryptographic check)."""
    # Any integer version counts, so a newer writer's envelope is refused by `decrypt` with a
    # clear error instead of being mistaken for a bare value.
    if not isinstance(obj, Mapping) or type(obj.get("v")) is not int or not isinstance(obj.get("alg"), str):
        return False
    return set(obj) in (_AES_FIELDS, _PLAIN_FIELDS)


def _check_context(context: Mapping[str, str]) -> None:
    if not isinstance(context, Mapping):
        raise TypeError("aad must be a mapping of str to str")
    for name, value in context.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise TypeError("aad must map non-empty str names to str values")


def _check_header(envelope: Mapping[str, Any], alg: str, fields: frozenset[str]) -> None:
    if not isinstance(envelope, Mapping):
        raise InvalidEnvelope("an envelope must be a JSON object")
    version = envelope.get("v")
    # `type(...) is int`: True == 1 in Python, but a boolean is not a version.
    if type(version) is not int:
        raise InvalidEnvelope("envelope field 'v' must be an integer")
    if version != ENVELOPE_VERSION:
        raise InvalidEnvelope(f"envelope version {version} is not supported (expected {ENVELOPE_VERSION})")
    found = envelope.get("alg")
    if found != alg:
        shown = found if isinstance(found, str) and len(found) <= 32 else "?"
        raise InvalidEnvelope(f"envelope algorithm {shown!r} is refused by this codec (expected {alg!r})")
    # Unknown fields are refused: they would be unauthenticated data riding along.
    if set(envelope) != fields:
        raise InvalidEnvelope(f"envelope fields must be exactly {sorted(fields)}")


def _parse_aes_envelope(envelope: Mapping[str, Any]) -> tuple[str, bytes, bytes, bytes]:
    _check_header(envelope, ALG_AES_GCM, _AES_FIELDS)
    kid = envelope["kid"]
    if not isinstance(kid, str) or not kid:
        raise InvalidEnvelope("envelope field 'kid' must be a non-empty string")
    edk = _unb64(envelope, "edk")
    nonce = _unb64(envelope, "iv")
    ciphertext = _unb64(envelope, "ct")
    if not edk:
        raise InvalidEnvelope("envelope field 'edk' is empty")
    if len(nonce) != NONCE_BYTES:
        raise InvalidEnvelope(f"envelope field 'iv' must be {NONCE_BYTES} bytes")
    if len(ciphertext) < TAG_BYTES:
        raise InvalidEnvelope("envelope field 'ct' is shorter than the authentication tag")
    return kid, edk, nonce, ciphertext


def _associated_data(kid: str, context: Mapping[str, str]) -> bytes:
    # The header is authenticated too, so no field can be swapped without the tag failing.
    return _canonical({"v": ENVELOPE_VERSION, "alg": ALG_AES_GCM, "kid": kid, "ctx": dict(context)})


def _canonical(value: Mapping[str, Any]) -> bytes:
    # RFC 8785: one byte string per context whatever the key order, for AAD and cache keys alike.
    encoded: bytes = rfc8785.dumps(dict(value))
    return encoded


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(envelope: Mapping[str, Any], field: str) -> bytes:
    text = envelope[field]
    if not isinstance(text, str):
        raise InvalidEnvelope(f"envelope field {field!r} must be a base64 string")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEnvelope(f"envelope field {field!r} is not valid base64") from None
    # Only the canonical spelling is accepted, so one envelope has exactly one textual form.
    if _b64(data) != text:
        raise InvalidEnvelope(f"envelope field {field!r} is not canonical base64")
    return data


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
