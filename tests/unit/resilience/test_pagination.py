"""`limit` and opaque cursors: bounds, round trips, and cursors this API did not issue."""

from __future__ import annotations

import base64
import json

import pytest

from cmdgate import errors
from cmdgate.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    parse_limit,
)

KEYS = frozenset({"pk", "sk"})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(("value", "limit"), [(None, DEFAULT_LIMIT), ("", DEFAULT_LIMIT), ("1", 1), ("100", 100)])
def test_parse_limit_accepts(value: str | None, limit: int) -> None:
    assert parse_limit(value) == limit
    assert MAX_LIMIT == 100


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "101",
        "-1",
        "1.5",
        "ten",
        " 5",
        "+5",
        "1e2",
        "007x",
        "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
        "\u0665",  # Arabic-Indic five: not an ASCII integer
    ],
)
def test_parse_limit_refuses(value: str) -> None:
    with pytest.raises(errors.BadRequest):
        parse_limit(value)


def test_a_partial_key_is_not_a_cursor() -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor({"sk": "x"}), KEYS)


@pytest.mark.parametrize(
    "last_key",
    [
        {"pk": "key#k", "sk": "v#000000000042"},
        {"pk": "caf\u00e9 \u2603 /+=?&", "sk": "x"},  # non-ASCII and URL-significant characters
        {"pk": "a" * 1024, "sk": "b"},
    ],
)
def test_cursor_round_trips_and_is_url_safe(last_key: dict[str, str]) -> None:
    cursor = encode_cursor(last_key)
    assert cursor is not None
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, KEYS) == last_key


def test_no_cursor_on_the_last_page_and_none_decodes_to_the_first() -> None:
    assert encode_cursor(None) is None
    assert encode_cursor({}) is None
    assert decode_cursor(None, KEYS) is None
    assert decode_cursor("", KEYS) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        "%%%",
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64(b"[]"),
        _b64(b'"pk"'),
        _b64(b"{}"),
        _b64(b"null"),
        _b64(json.dumps({"pk": "k", "extra": "x"}).encode()),  # a key of another table
        _b64(json.dumps({"gsi1pk": "k"}).encode()),
        _b64(json.dumps({"pk": {"S": "k"}}).encode()),  # DynamoDB-typed, not ours
        _b64(json.dumps({"pk": 1}).encode()),
        _b64(json.dumps({"pk": None}).encode()),
        _b64(json.dumps({"pk": "a" * 1025}).encode()),
    ],
)
def test_tampered_or_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor(cursor, KEYS)
    assert refused.value.status == 400


def test_a_cursor_of_one_list_is_refused_by_another() -> None:
    cursor = encode_cursor({"pk": "key#k", "sk": "v#1"})
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, frozenset({"sk"}))
