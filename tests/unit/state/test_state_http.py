"""Conditional headers in, metadata headers out."""

from __future__ import annotations

import pytest

from cmdgate import errors
from cmdgate.state.http import none_match_hits, parse_preconditions, state_headers
from cmdgate.state.model import Register
from cmdgate.state.service import Preconditions


@pytest.mark.parametrize(
    ("if_match", "if_none_match", "expected"),
    [
        (None, None, Preconditions()),
        ("*", None, Preconditions(if_match_any=True)),
        (' "7" ', None, Preconditions(if_match=7)),
        ('"0"', None, Preconditions(if_match=0)),
        (None, " * ", Preconditions(if_none_match_any=True)),
        ('"3"', "*", Preconditions(if_match=3, if_none_match_any=True)),
    ],
)
def test_parse_preconditions_accepts(if_match: str | None, if_none_match: str | None, expected: Preconditions) -> None:
    assert parse_preconditions(if_match, if_none_match) == expected


@pytest.mark.parametrize(
    ("if_match", "if_none_match"),
    [
        ("7", None),  # not quoted
        ('W/"7"', None),  # weak ETags never match a write
        ('"1", "2"', None),  # lists are not supported
        ('"-1"', None),
        ('"1234567890123456789"', None),  # 19 digits
        ('"abc"', None),
        ("", None),
        (None, '"3"'),
        (None, ""),
    ],
)
def test_parse_preconditions_refuses(if_match: str | None, if_none_match: str | None) -> None:
    with pytest.raises(errors.BadRequest):
        parse_preconditions(if_match, if_none_match)


@pytest.mark.parametrize(
    ("header", "hits"),
    [
        (None, False),
        ('"4"', True),
        ('W/"4"', True),
        ('"1", "4"', True),
        ('"1",W/"4"', True),
        ("*", True),
        ('"3"', False),
        ('"44"', False),
        ("4", False),
        ('"3", "5"', False),
    ],
)
def test_none_match_hits_the_current_version(header: str | None, hits: bool) -> None:
    assert none_match_hits(header, 4) is hits


def test_state_headers() -> None:
    register = Register("k", 12, "{}", "d", "2027-01-15T08:30:05Z", False, synced_version=10)
    assert state_headers(register) == {
        "ETag": '"12"',
        "Last-Modified": "Fri, 15 Jan 2027 08:30:05 GMT",
        "State-Version": "12",
        "Gist-Synced-Version": "10",
    }
