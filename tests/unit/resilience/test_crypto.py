"""Envelope encryption: round trips, binding to the state key, tampering, KMS call counts, plain-text opt-in."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from cmdgate.crypto import (
    ALG_AES_GCM,
    DEFAULT_MAX_MESSAGES_PER_DATA_KEY,
    DecryptionFailed,
    EnvelopeCipher,
    InvalidEnvelope,
    KeyServiceUnavailable,
    PlaintextCodec,
    codec_for,
    is_envelope,
)

AAD = {"cmdgate:state-key": "team/config"}
OTHER_AAD = {"cmdgate:state-key": "team/other"}
SECRET = b'{"token": "hunter2-very-secret-value"}'


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class KmsCalls(Counter[str]):
    """Counts the KMS operations a client makes (a botocore event hook, as cmdgate.aws does)."""

    def __call__(self, event_name: str, **kwargs: Any) -> None:
        self[event_name.rsplit(".", 1)[-1]] += 1


@pytest.fixture
def kms(session: Any) -> Any:
    return session.client("kms")


@pytest.fixture
def key_id(kms: Any) -> str:
    return kms.create_key(Description="cmdgate state")["KeyMetadata"]["KeyId"]


@pytest.fixture
def calls(kms: Any) -> KmsCalls:
    counter = KmsCalls()
    kms.meta.events.register("before-call.kms.*", counter)
    return counter


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cipher(kms: Any, key_id: str, clock: Clock) -> EnvelopeCipher:
    return EnvelopeCipher(kms, key_id, clock=clock)


def _flip(envelope: dict[str, Any], field: str, index: int = 0) -> dict[str, Any]:
    raw = bytearray(base64.b64decode(envelope[field]))
    raw[index] ^= 0x01
    return {**envelope, field: base64.b64encode(bytes(raw)).decode("ascii")}


# --- round trip and shape ---------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [SECRET, b"", bytes(range(256)) * 40, "é€😀".encode()])
def test_round_trip(cipher: EnvelopeCipher, plaintext: bytes) -> None:
    assert cipher.decrypt(cipher.encrypt(plaintext, AAD), AAD) == plaintext


def test_round_trip_through_json_with_a_fresh_cipher(kms: Any, key_id: str, cipher: EnvelopeCipher) -> None:
    stored = json.dumps(cipher.encrypt(SECRET, AAD))
    reader = EnvelopeCipher(kms, key_id)  # another Lambda environment: no cached keys
    assert reader.decrypt(json.loads(stored), dict(reversed(list(AAD.items())))) == SECRET


def test_envelope_is_json_serialisable_and_hides_the_plaintext(cipher: EnvelopeCipher, kms: Any, key_id: str) -> None:
    envelope = cipher.encrypt(SECRET, AAD)
    text = json.dumps(envelope)
    assert set(envelope) == {"v", "alg", "kid", "edk", "iv", "ct"}
    assert envelope["v"] == 1
    assert envelope["alg"] == ALG_AES_GCM
    assert envelope["kid"] == kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    assert len(base64.b64decode(envelope["iv"])) == 12
    assert len(base64.b64decode(envelope["ct"])) == len(SECRET) + 16
    assert b"hunter2" not in text.encode()
    assert base64.b64encode(SECRET).decode() not in text
    assert AAD["cmdgate:state-key"] not in text  # the context is supplied by the reader, not stored
    assert is_envelope(json.loads(text))


def test_nonces_differ_across_encryptions_under_one_data_key(cipher: EnvelopeCipher, calls: KmsCalls) -> None:
    envelopes = [cipher.encrypt(SECRET, AAD) for _ in range(200)]
    assert calls["GenerateDataKey"] == 1
    assert len({e["edk"] for e in envelopes}) == 1
    assert len({e["iv"] for e in envelopes}) == 200
    assert len({e["ct"] for e in envelopes}) == 200


# --- binding and tampering --------------------------------------------------------------------


def test_envelope_copied_to_another_state_key_fails(kms: Any, key_id: str, cipher: EnvelopeCipher) -> None:
    envelope = cipher.encrypt(SECRET, AAD)
    with pytest.raises(DecryptionFailed):
        EnvelopeCipher(kms, key_id).decrypt(envelope, OTHER_AAD)  # KMS refuses the context
    cipher.decrypt(envelope, AAD)  # warm the decrypt cache for this edk...
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(envelope, OTHER_AAD)  # ...which does not let another context through


def test_extra_aad_entry_fails(cipher: EnvelopeCipher) -> None:
    envelope = cipher.encrypt(SECRET, AAD)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(envelope, {**AAD, "cmdgate:version": "2"})


@pytest.mark.parametrize(("field", "index"), [("ct", 0), ("ct", -1), ("iv", 0), ("iv", 11), ("edk", 40)])
def test_tampering_fails(kms: Any, key_id: str, cipher: EnvelopeCipher, field: str, index: int) -> None:
    tampered = _flip(cipher.encrypt(SECRET, AAD), field, index)
    for reader in (cipher, EnvelopeCipher(kms, key_id)):  # with and without cached data keys
        with pytest.raises(DecryptionFailed) as caught:
            reader.decrypt(tampered, AAD)
        assert "hunter2" not in str(caught.value)


def test_swapped_edk_or_kid_fails(kms: Any, key_id: str, cipher: EnvelopeCipher) -> None:
    envelope = cipher.encrypt(SECRET, AAD)
    other_key = kms.create_key()["KeyMetadata"]
    other = EnvelopeCipher(kms, other_key["KeyId"]).encrypt(SECRET, AAD)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt({**envelope, "kid": other_key["Arn"]}, AAD)  # kid is authenticated
    with pytest.raises((DecryptionFailed, KeyServiceUnavailable)):
        cipher.decrypt({**envelope, "edk": other["edk"]}, AAD)  # data key of another KMS key: refused by KMS
    with pytest.raises((DecryptionFailed, KeyServiceUnavailable)):
        cipher.decrypt(other, AAD)  # a whole envelope made under another KMS key


def test_fixed_context_separates_deployments(kms: Any, key_id: str) -> None:
    prod = EnvelopeCipher(kms, key_id, context={"cmdgate:stack": "prod"})
    dev = EnvelopeCipher(kms, key_id, context=lambda: {"cmdgate:stack": "dev"})
    envelope = prod.encrypt(SECRET, AAD)
    assert EnvelopeCipher(kms, key_id, context={"cmdgate:stack": "prod"}).decrypt(envelope, AAD) == SECRET
    with pytest.raises(DecryptionFailed):
        dev.decrypt(envelope, AAD)
    with pytest.raises(ValueError, match="two different values"):
        prod.encrypt(SECRET, {"cmdgate:stack": "dev"})


@pytest.mark.parametrize("aad", [{}, {"k": 1}, {"": "v"}, "cmdgate:state-key"])
def test_bad_aad_is_refused(cipher: EnvelopeCipher, aad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        cipher.encrypt(SECRET, aad)


# --- envelope validation ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, True, "1", None, 1.0])
def test_wrong_version_is_rejected(cipher: EnvelopeCipher, version: Any) -> None:
    envelope = {**cipher.encrypt(SECRET, AAD), "v": version}
    with pytest.raises(InvalidEnvelope):
        cipher.decrypt(envelope, AAD)
    with pytest.raises(InvalidEnvelope):
        PlaintextCodec().decrypt({"v": version, "alg": "none", "value": "x"}, AAD)


@pytest.mark.parametrize(
    "change",
    [
        {"alg": "AES-128-GCM"},
        {"iv": base64.b64encode(b"\x00" * 16).decode()},
        {"iv": "not base64!"},
        {"ct": base64.b64encode(b"short").decode()},
        {"edk": ""},
        {"edk": 123},
        {"kid": ""},
        {"extra": "unauthenticated"},
    ],
)
def test_malformed_envelope_is_rejected(cipher: EnvelopeCipher, change: dict[str, Any]) -> None:
    with pytest.raises(InvalidEnvelope):
        cipher.decrypt({**cipher.encrypt(SECRET, AAD), **change}, AAD)


def test_non_canonical_base64_is_rejected(cipher: EnvelopeCipher) -> None:
    envelope = cipher.encrypt(SECRET, AAD)
    iv = envelope["iv"]  # 12 bytes -> 16 chars, no padding: spell the same bytes with a trailing newline
    with pytest.raises(InvalidEnvelope):
        cipher.decrypt({**envelope, "iv": iv + "\n"}, AAD)


@pytest.mark.parametrize("missing", ["kid", "edk", "iv", "ct"])
def test_missing_field_is_rejected(cipher: EnvelopeCipher, missing: str) -> None:
    envelope = cipher.encrypt(SECRET, AAD)
    del envelope[missing]
    with pytest.raises(InvalidEnvelope):
        cipher.decrypt(envelope, AAD)


def test_codecs_refuse_each_others_envelopes(cipher: EnvelopeCipher) -> None:
    plain = PlaintextCodec()
    with pytest.raises(InvalidEnvelope, match="refused"):
        cipher.decrypt(plain.encrypt(SECRET, AAD), AAD)  # no silent downgrade to plain text
    with pytest.raises(InvalidEnvelope):
        plain.decrypt(cipher.encrypt(SECRET, AAD), AAD)


# --- KMS call pattern ---------------------------------------------------------------------------


def test_data_key_is_reused_within_the_window(cipher: EnvelopeCipher, clock: Clock, calls: KmsCalls) -> None:
    envelopes = []
    for _ in range(5):
        envelopes.append(cipher.encrypt(SECRET, AAD))
        clock.now += 10
    assert calls["GenerateDataKey"] == 1
    clock.now += 300  # past data_key_reuse_s
    envelopes.append(cipher.encrypt(SECRET, AAD))
    assert calls["GenerateDataKey"] == 2
    assert envelopes[-1]["edk"] != envelopes[0]["edk"]
    assert all(cipher.decrypt(e, AAD) == SECRET for e in envelopes)


def test_data_keys_are_per_context(cipher: EnvelopeCipher, calls: KmsCalls) -> None:
    a = [cipher.encrypt(SECRET, AAD) for _ in range(3)]
    b = [cipher.encrypt(SECRET, OTHER_AAD) for _ in range(3)]
    assert calls["GenerateDataKey"] == 2
    assert a[0]["edk"] != b[0]["edk"]


def test_data_key_message_bound(kms: Any, key_id: str, calls: KmsCalls) -> None:
    cipher = EnvelopeCipher(kms, key_id, max_messages_per_data_key=3)
    edks = [cipher.encrypt(SECRET, AAD)["edk"] for _ in range(7)]
    assert calls["GenerateDataKey"] == 3
    assert [edks.index(e) for e in edks] == [0, 0, 0, 3, 3, 3, 6]
    assert DEFAULT_MAX_MESSAGES_PER_DATA_KEY <= 2**12
    with pytest.raises(ValueError):
        EnvelopeCipher(kms, key_id, max_messages_per_data_key=2**32)


def test_reuse_can_be_disabled(kms: Any, key_id: str, calls: KmsCalls) -> None:
    cipher = EnvelopeCipher(kms, key_id, data_key_reuse_s=0)
    assert len({cipher.encrypt(SECRET, AAD)["edk"] for _ in range(3)}) == 3
    assert calls["GenerateDataKey"] == 3


def test_decrypting_envelopes_sharing_an_edk_costs_one_kms_call(
    kms: Any, key_id: str, cipher: EnvelopeCipher, calls: KmsCalls
) -> None:
    envelopes = [cipher.encrypt(f"version {n}".encode(), AAD) for n in range(10)]
    assert len({e["edk"] for e in envelopes}) == 1
    reader = EnvelopeCipher(kms, key_id)
    assert [reader.decrypt(e, AAD) for e in envelopes] == [f"version {n}".encode() for n in range(10)]
    assert calls["Decrypt"] == 1


def test_decrypt_cache_expires_and_is_bounded(kms: Any, key_id: str, clock: Clock, calls: KmsCalls) -> None:
    writer = EnvelopeCipher(kms, key_id)
    reader = EnvelopeCipher(kms, key_id, clock=clock, decrypt_cache_size=2, decrypt_cache_s=60)
    first, second, third = (writer.encrypt(SECRET, {"cmdgate:state-key": k}) for k in "abc")
    reader.decrypt(first, {"cmdgate:state-key": "a"})
    reader.decrypt(first, {"cmdgate:state-key": "a"})
    assert calls["Decrypt"] == 1
    clock.now += 61
    reader.decrypt(first, {"cmdgate:state-key": "a"})
    assert calls["Decrypt"] == 2
    reader.decrypt(second, {"cmdgate:state-key": "b"})
    reader.decrypt(third, {"cmdgate:state-key": "c"})  # evicts "a" (size 2)
    reader.decrypt(first, {"cmdgate:state-key": "a"})
    assert calls["Decrypt"] == 5


class DownKms:
    """A KMS client that fails every call the way botocore reports it."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def generate_data_key(self, **kwargs: Any) -> Any:
        raise self.error

    def decrypt(self, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GenerateDataKey"),
        ClientError({"Error": {"Code": "DisabledException", "Message": "key disabled"}}, "Decrypt"),
        EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com"),
    ],
)
def test_kms_outage_is_a_dependency_error(cipher: EnvelopeCipher, key_id: str, error: Exception) -> None:
    envelope = cipher.encrypt(SECRET, AAD)
    down = EnvelopeCipher(DownKms(error), key_id)
    with pytest.raises(KeyServiceUnavailable) as caught:
        down.encrypt(SECRET, AAD)
    assert caught.value.status == 503
    with pytest.raises(KeyServiceUnavailable):
        down.decrypt(envelope, AAD)  # not DecryptionFailed: nothing says the envelope is bad


def test_kms_refusal_is_a_decryption_failure(cipher: EnvelopeCipher, key_id: str) -> None:
    refusal = ClientError({"Error": {"Code": "InvalidCiphertextException", "Message": ""}}, "Decrypt")
    with pytest.raises(DecryptionFailed):
        EnvelopeCipher(DownKms(refusal), key_id).decrypt(cipher.encrypt(SECRET, AAD), AAD)


# --- plain-text opt-in, factory, is_envelope ----------------------------------------------------


def test_plaintext_codec_round_trip() -> None:
    codec = PlaintextCodec()
    envelope = codec.encrypt("héllo".encode(), AAD)
    assert envelope == {"v": 1, "alg": "none", "value": "héllo"}
    assert json.loads(json.dumps(envelope)) == envelope
    assert codec.decrypt(envelope, AAD) == "héllo".encode()
    with pytest.raises(ValueError):
        codec.encrypt(b"\xff\xfe", AAD)


def test_codec_for(kms: Any, key_id: str) -> None:
    assert isinstance(codec_for("plaintext", None, None), PlaintextCodec)
    kms_codec = codec_for("kms", kms, key_id)
    assert isinstance(kms_codec, EnvelopeCipher)
    assert kms_codec.decrypt(kms_codec.encrypt(SECRET, AAD), AAD) == SECRET
    with pytest.raises(ValueError):
        codec_for("kms", kms, None)
    with pytest.raises(ValueError):
        codec_for("rot13", kms, key_id)  # type: ignore[arg-type]


def test_is_envelope(cipher: EnvelopeCipher) -> None:
    assert is_envelope(cipher.encrypt(SECRET, AAD))
    assert is_envelope(PlaintextCodec().encrypt(SECRET, AAD))
    assert is_envelope({"v": 2, "alg": "none", "value": "x"})  # a newer version: decrypt will say so
    assert not is_envelope({"v": True, "alg": "none", "value": "x"})
    assert not is_envelope({"v": 1, "alg": "none", "value": "x", "more": 1})
    assert not is_envelope({"v": 1, "alg": "none"})
    assert not is_envelope({"token": "plain"})
    assert not is_envelope("string")
    assert not is_envelope(None)


def test_key_may_be_named_by_alias(kms: Any, key_id: str) -> None:
    kms.create_alias(AliasName="alias/cmdgate-state", TargetKeyId=key_id)
    cipher = EnvelopeCipher(kms, "alias/cmdgate-state")
    envelope = cipher.encrypt(SECRET, AAD)
    assert envelope["kid"].endswith(f":key/{key_id}")  # the key ARN KMS returned, not the alias
    assert EnvelopeCipher(kms, "alias/cmdgate-state").decrypt(envelope, AAD) == SECRET
