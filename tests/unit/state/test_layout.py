"""Where keys live in gists: namespaces, shard numbering, file names, documents, the shard directory."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cmdgate.crypto import codec_for
from cmdgate.state import layout
from cmdgate.state.layout import FileNamer, ShardRef, namespace_of
from cmdgate.state.model import digest_of
from cmdgate.state.names import FileNameKey
from cmdgate.state.shards import ShardDirectory


@pytest.mark.parametrize(
    ("key", "namespace"),
    [("deploy.web", "deploy"), ("db:main.x", "db"), ("a.b:c", "a"), ("plain", "_default"), ("x-y_z", "_default")],
)
def test_the_namespace_is_the_text_before_the_first_dot_or_colon(key: str, namespace: str) -> None:
    assert namespace_of(key) == namespace


def test_shard_references_round_trip_and_refuse_junk() -> None:
    assert ShardRef.parse("deploy/12") == ShardRef("deploy", 12) and ShardRef("deploy", 12).id == "deploy/12"
    for junk in ("deploy", "/3", "deploy/x"):
        with pytest.raises(ValueError):
            ShardRef.parse(junk)


def test_file_names_are_the_key_in_plain_text_and_a_keyed_hmac_when_encrypted() -> None:
    assert FileNamer(None).file_of("deploy.web") == "deploy.web.json"
    hidden = FileNamer(b"k" * 32).file_of("deploy.web")
    assert "deploy" not in hidden and len(hidden) == 45 and hidden.endswith(".json")
    assert FileNamer(b"k" * 32).file_of("deploy.web") == hidden  # stable
    assert FileNamer(b"j" * 32).file_of("deploy.web") != hidden  # keyed
    # No key's file can take the manifest's name.
    assert not FileNamer(None).file_of("manifest").startswith("_")


def test_a_document_opens_only_for_its_key_and_its_sealed_version() -> None:
    codec = codec_for("plaintext")
    content = layout.encode(
        codec, "a.k", 3, '{"x":1}', deleted=False, updated_at="t", digest=digest_of({"x": 1}), plaintext=False
    )
    unsealed = {field: value for field, value in json.loads(content).items() if field != "name"}
    assert "a.k" not in json.dumps(unsealed).replace('"cmdgate:state-key"', "")  # no key name but the sealed one
    decoded = layout.decode(codec, "a.k", content)
    assert (decoded.version, decoded.deleted, decoded.value) == (3, False, {"x": 1})
    assert layout.version_in(content) == 3
    edited = json.loads(content)
    edited["version"] = 4
    with pytest.raises(layout.InvalidStateFile):
        layout.decode(codec, "a.k", json.dumps(edited))
    for junk in ("not json", "[]", '{"version": 1}'):
        with pytest.raises(layout.InvalidStateFile):
            layout.decode(codec, "a.k", junk)


def test_the_encrypted_codec_binds_a_file_to_its_key(aws: Any) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    codec = codec_for("kms", kms, key_id)
    content = layout.encode(codec, "a.k", 1, '"v"', deleted=False, updated_at="t", digest="d", plaintext=False)
    assert layout.decode(codec, "a.k", content).value == "v"
    with pytest.raises(layout.InvalidStateFile):
        layout.decode(codec, "a.other", content)  # a file copied to another key's name does not open


def test_an_encrypted_file_names_its_key_only_sealed_and_key_in_opens_it(aws: Any) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    codec = codec_for("kms", kms, kms.create_key()["KeyMetadata"]["KeyId"])
    args: dict[str, Any] = {"deleted": False, "updated_at": "t", "digest": digest_of({"x": 1})}
    content = layout.encode(codec, "team-a.web", 2, '{"x":1}', plaintext=False, **args)
    assert "team-a" not in content  # neither the name nor the value is readable
    assert layout.key_in(codec, content) == "team-a.web"  # what a recovery reads instead of the HMAC
    plain = layout.encode(codec_for("plaintext"), "team-a.web", 2, '{"x":1}', plaintext=True, **args)
    assert layout.key_in(codec_for("plaintext"), plain) == "team-a.web" and "name" not in json.loads(plain)
    # A sealed name moved into another document still opens (it is bound to no file), but a name
    # that is no valid key, or an edited envelope, is refused.
    edited = json.loads(content)
    edited["name"]["ct"] = edited["name"]["ct"][:-4] + "AAAA"
    with pytest.raises(layout.InvalidStateFile):
        layout.key_in(codec, json.dumps(edited))
    with pytest.raises(layout.InvalidStateFile):
        layout.key_in(codec, json.dumps({"version": 1, "key": "Not A Key"}))
    assert layout.key_in(codec, json.dumps({"version": 1})) is None  # written before files carried names


def test_every_instance_gets_the_same_file_name_key_made_once(table_like: Any) -> None:
    table_like("StateTable")
    kms = boto3.client("kms", region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    first = FileNameKey(dynamodb, "unit-StateTable", kms, key_id).get()
    second = FileNameKey(dynamodb, "unit-StateTable", kms, key_id).get()
    assert first == second and len(first) == 32
    item = dynamodb.get_item(TableName="unit-StateTable", Key={"pk": {"S": "meta#gist-file-names"}, "sk": {"S": "key"}})
    assert first not in item["Item"]["edk"]["B"]  # only the encrypted form is stored


def test_the_shard_directory_fills_shards_by_files_and_bytes(table_like: Any) -> None:
    table_like("StateTable")
    shards = ShardDirectory(
        boto3.client("dynamodb", region_name="us-east-1"), "unit-StateTable", keys_per_gist=3, bytes_per_gist=1000
    )
    placed = [shards.place("ns", 100).number for _ in range(4)]
    assert placed == [0, 0, 0, 1]  # three files per gist
    assert shards.place("ns", 950).number == 2  # no room for 950 more bytes in shard 1
    assert shards.place("other", 10) == ShardRef("other", 0)  # namespaces are apart
    shards.release(ShardRef("ns", 2), 950)
    assert shards.place("ns", 100).number == 2  # the released room is used again
    assert shards.gist_of(ShardRef("ns", 0)) is None
    assert shards.remember_gist(ShardRef("ns", 0), "g1") == "g1"
    assert shards.remember_gist(ShardRef("ns", 0), "g2") == "g1"  # first come
    assert shards.gist_of(ShardRef("ns", 0)) == "g1"
