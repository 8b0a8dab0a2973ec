"""API keys: only the hash is stored, lookups by hash against a table shaped like KeysTable."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from cmdgate.auth.apikeys import (
    API_KEY_PREFIX,
    BOOTSTRAP_MARKER,
    MAX_TOKEN_LENGTH,
    ApiKeyRecord,
    ApiKeyStore,
    BootstrapRefused,
    generate_api_key,
    hash_api_key,
)
from cmdgate.auth.permissions import Principal


@pytest.fixture
def keys_table(table_like: Callable[[str], Any]) -> Any:
    return table_like("KeysTable")


@pytest.fixture
def store(keys_table: Any) -> ApiKeyStore:
    return ApiKeyStore(keys_table)


def test_hash_is_the_sha256_hex_digest() -> None:
    assert hash_api_key("cg_abc") == hashlib.sha256(b"cg_abc").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_api_key("anything"))
    assert hash_api_key("cg_a") != hash_api_key("cg_b")
    assert hash_api_key("cg_\u00e9") == hashlib.sha256("cg_\u00e9".encode()).hexdigest()


def test_generated_keys_carry_256_random_bits() -> None:
    keys = {generate_api_key() for _ in range(500)}
    assert len(keys) == 500
    for key in keys:
        assert key.startswith(API_KEY_PREFIX)
        body = key[len(API_KEY_PREFIX) :]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body)
        assert len(base64.urlsafe_b64decode(body + "=")) == 32
    # Every url-safe character shows up somewhere across 500 keys: nothing is fixed or truncated.
    alphabet = set("".join(k[len(API_KEY_PREFIX) :] for k in keys))
    assert len(alphabet) == 64


def test_create_stores_only_the_hash(store: ApiKeyStore, keys_table: Any) -> None:
    key, record = store.create("ci", ["commands.run:deploy.*"], {"quota": 100, "window_s": 60})
    items = keys_table.scan()["Items"]
    assert len(items) == 1
    item = items[0]
    assert item["key_hash"] == hash_api_key(key) == record.key_hash
    assert key not in repr(item)
    assert key[len(API_KEY_PREFIX) :] not in repr(item)
    assert item["status"] == "active"
    assert "expires_at" not in item


def test_find_by_key_returns_the_record(store: ApiKeyStore) -> None:
    key, record = store.create("ci", ["commands.run:deploy.*", "commands.list"], {"quota": 100, "window_s": 60})
    found = store.find_by_key(key)
    assert found == record
    assert found is not None
    assert found.rate_limit == {"quota": 100, "window_s": 60}
    assert all(type(v) is int for v in found.rate_limit.values())
    assert found.principal() == Principal(
        principal_id=f"key:{record.key_id}",
        permissions=("commands.run:deploy.*", "commands.list"),
        kind="api_key",
        key_id=record.key_id,
        rate_limit={"quota": 100, "window_s": 60},
    )


@pytest.mark.parametrize("presented", ["", "cg_wrong", "CG_SAME", " cg_same", "cg_same "])
def test_find_by_key_refuses_any_other_string(store: ApiKeyStore, presented: str) -> None:
    store.create("x", ["admin"], api_key="cg_same")
    assert store.find_by_key(presented) is None


def test_overlong_tokens_are_not_looked_up(store: ApiKeyStore) -> None:
    at_limit = "k" * MAX_TOKEN_LENGTH
    over_limit = "k" * (MAX_TOKEN_LENGTH + 1)
    store.create("at", ["admin"], api_key=at_limit)
    store.create("over", ["admin"], api_key=over_limit)
    assert store.find_by_key(at_limit) is not None
    assert store.find_by_key(over_limit) is None


def test_a_key_is_registered_once(store: ApiKeyStore) -> None:
    store.create("first", ["admin"], api_key="cg_bootstrap")
    with pytest.raises(ClientError) as raised:
        store.create("second", ["commands.list"], api_key="cg_bootstrap")
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    found = store.find_by_key("cg_bootstrap")
    assert found is not None
    assert found.name == "first"


def test_key_id_index_finds_the_record(store: ApiKeyStore, keys_table: Any) -> None:
    _, record = store.create("ci", ["commands.list"])
    items = keys_table.query(IndexName="by_key_id", KeyConditionExpression=Key("key_id").eq(record.key_id))["Items"]
    assert [ApiKeyRecord.from_item(i) for i in items] == [record]


def test_expiry_round_trips(store: ApiKeyStore) -> None:
    key, _ = store.create("temp", ["commands.list"], expires_at=2_000_000_000)
    found = store.find_by_key(key)
    assert found is not None
    assert found.expires_at == 2_000_000_000
    assert found.is_usable(1_999_999_999.9)
    assert not found.is_usable(2_000_000_000)


def test_revoked_key_is_found_but_not_usable(store: ApiKeyStore) -> None:
    key, record = store.create("ci", ["admin"])
    other_key, _ = store.create("other", ["admin"])
    assert store.revoke(record.key_id)
    found = store.find_by_key(key)
    assert found is not None
    assert found.status == "revoked"
    assert not found.is_usable(0)
    other = store.find_by_key(other_key)
    assert other is not None
    assert other.is_usable(0)


def test_revoking_an_unknown_key_id(store: ApiKeyStore, keys_table: Any) -> None:
    store.create("ci", ["admin"])
    assert not store.revoke("0123456789abcdef")
    assert [i["status"] for i in keys_table.scan()["Items"]] == ["active"]


def test_bootstrap_creates_one_admin_key_only(store: ApiKeyStore) -> None:
    key, record = store.bootstrap_admin(api_key="cg_first_admin")
    assert key == "cg_first_admin"
    found = store.find_by_key(key)
    assert found == record
    assert found is not None
    assert found.principal().is_admin
    with pytest.raises(BootstrapRefused):
        store.bootstrap_admin()
    with pytest.raises(BootstrapRefused):
        store.bootstrap_admin(api_key="cg_second_admin")
    assert store.find_by_key("cg_second_admin") is None


def test_bootstrap_is_refused_after_the_first_admin_was_revoked(store: ApiKeyStore) -> None:
    _, record = store.bootstrap_admin()
    store.revoke(record.key_id)
    with pytest.raises(BootstrapRefused):
        store.bootstrap_admin()


def test_list_pages_cover_every_key_once_and_skip_the_bootstrap_marker(store: ApiKeyStore) -> None:
    store.bootstrap_admin()
    issued = {store.create(f"k{i}", ["commands.list"])[1].key_id for i in range(5)}
    seen: list[str] = []
    start: dict[str, Any] | None = None
    for _ in range(20):
        records, start = store.list_page(2, start)
        seen.extend(r.key_id for r in records)
        if start is None:
            break
    assert len(seen) == len(set(seen)) == 6
    assert issued < set(seen)
    assert all(r.key_hash != BOOTSTRAP_MARKER for r in store.list_page(100, None)[0])


def test_public_view_never_shows_the_hash(store: ApiKeyStore) -> None:
    key, record = store.create("ci", ["commands.list"], {"quota": 1, "window_s": 1})
    view = record.public_view()
    assert record.key_hash not in repr(view)
    assert key not in repr(view)
    assert view["key_id"] == record.key_id


@pytest.mark.parametrize(
    ("status", "expires_at", "now", "usable"),
    [
        ("active", None, 1e12, True),
        ("active", 100, 99.999, True),
        ("active", 100, 100, False),
        ("active", 100, 101, False),
        ("revoked", None, 0, False),
        ("revoked", 100, 0, False),
        ("disabled", None, 0, False),
    ],
)
def test_is_usable(status: str, expires_at: int | None, now: float, usable: bool) -> None:
    record = ApiKeyRecord("id", "hash", "n", (), status=status, expires_at=expires_at)
    assert record.is_usable(now) is usable


def test_from_item_parses_decimals_and_defaults() -> None:
    record = ApiKeyRecord.from_item(
        {
            "key_id": "k1",
            "key_hash": "h",
            "permissions": ["a", "b"],
            "rate_limit": {"quota": Decimal(5), "window_s": Decimal("60")},
            "created_at": Decimal(1700000000),
            "expires_at": Decimal(1800000000),
        }
    )
    assert record == ApiKeyRecord(
        key_id="k1",
        key_hash="h",
        name="",
        permissions=("a", "b"),
        rate_limit={"quota": 5, "window_s": 60},
        status="active",
        created_at=1700000000,
        expires_at=1800000000,
    )
    assert ApiKeyRecord.from_item(record.to_item()) == record


def test_the_client_reader_finds_what_the_table_finds(keys_table: Any, session: Any) -> None:
    from cmdgate.aws import item_reader

    key, created = ApiKeyStore(keys_table).create("ci", ["commands.run:echo"], {"quota": 7, "window_s": 60})
    built: list[Any] = []

    def build() -> Any:
        built.append(1)
        return keys_table

    reader = item_reader(session.client("dynamodb"), keys_table.name, "key_hash")
    lean = ApiKeyStore(table_factory=build, reader=reader)
    found = lean.find_by_key(key)
    assert found == created == ApiKeyStore(keys_table).find_by_key(key)
    assert found is not None and found.rate_limit == {"quota": 7, "window_s": 60}
    assert lean.find_by_key(key + "x") is None
    assert built == []  # a lookup never built the Table resource
    assert lean.revoke(created.key_id) and built == [1]  # an admin action builds it, once
    revoked = lean.find_by_key(key)
    assert revoked is not None and revoked.status == "revoked"


def test_a_store_takes_a_table_or_its_factory_not_both(keys_table: Any) -> None:
    with pytest.raises(TypeError):
        ApiKeyStore(keys_table, table_factory=lambda: keys_table)
