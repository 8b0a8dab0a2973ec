"""Permission globs, the principal that holds them, and its trip through the authorizer context."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cmdgate.auth.permissions import ADMIN, Principal, may_reach_prefix, pattern_matches


@pytest.mark.parametrize(
    ("pattern", "permission", "expected"),
    [
        ("commands.run:*", "commands.run:deploy.prod", True),
        ("commands.run:*", "commands.run:a:b:c", True),
        ("commands.run:deploy.*", "commands.run:deploy.prod.eu-west-1", True),
        ("commands.run:deploy.*", "commands.run:deploy.", True),
        ("commands.run:deploy.*", "commands.run:deploy", False),
        ("commands.run:deploy.*", "commands.run:deployXprod", False),
        ("commands.run:deploy.*", "commands.run:echo", False),
        ("state.write:team-a.*", "state.write:team-a.config", True),
        ("state.write:team-a.*", "state.write:team-b.config", False),
        ("state.write:team-a.*", "state.read:team-a.config", False),
        ("*", "state.write:anything:at.all", True),
        ("*", "", True),
        ("*:deploy", "commands.run:deploy", True),
        ("a*b*c", "a--b--c", True),
        ("a*b*c", "a--c", False),
        ("**", "x", True),
        # anchored at both ends
        ("commands.list", "commands.list", True),
        ("commands.list", "commands.listing", False),
        ("commands.list", "xcommands.list", False),
        ("commands.list", "", False),
        # regex metacharacters are literal
        ("a.b", "aXb", False),
        ("a.b", "a.b", True),
        ("a+b", "aab", False),
        ("a+b", "a+b", True),
        ("a|b", "a", False),
        ("a|b", "a|b", True),
        ("[ab]", "a", False),
        ("[ab]", "[ab]", True),
        ("x?", "x", False),
        ("(x)", "(x)", True),
        ("(x)", "x", False),
        ("$x^", "$x^", True),
        ("a\\d", "a1", False),
        ("a\\d", "a\\d", True),
        ("a{2}", "aa", False),
        ("a{2}*", "a{2}-suffix", True),
    ],
)
def test_pattern_matches(pattern: str, permission: str, expected: bool) -> None:
    assert pattern_matches(pattern, permission) is expected


def test_star_matches_a_run_containing_a_newline() -> None:
    assert pattern_matches("commands.run:*", "commands.run:line1\nline2")


@pytest.mark.parametrize(
    ("pattern", "prefix", "expected"),
    [
        ("commands.run:deploy.*", "commands.run:", True),
        ("commands.run:echo", "commands.run:", True),
        ("commands.run:*", "commands.run:", True),
        ("commands.*", "commands.run:", True),
        ("commands.*", "commands.list", True),
        ("co*", "commands.run:", True),
        ("*", "state.read:", True),
        ("*:deploy", "commands.run:", True),
        ("state.*", "state.read:", True),
        ("state.read:*", "state.write:", False),
        ("state.write:team-a.*", "state.read:", False),
        ("commands.list", "commands.run:", False),
        ("commands.run:*", "commands.list", False),
        ("commands.ru", "commands.run:", False),
        ("admin", "commands.run:", False),
        ("commands.list", "commands.list", True),
    ],
)
def test_may_reach_prefix(pattern: str, prefix: str, expected: bool) -> None:
    assert may_reach_prefix(pattern, prefix) is expected


def test_admin_grants_everything() -> None:
    admin = Principal("key:root", (ADMIN,))
    assert admin.is_admin
    for permission in ("commands.run:anything", "commands.list", "state.write:x", "state.read:y", "whatever"):
        assert admin.can(permission)


@pytest.mark.parametrize("pattern", ["*", "adm*", "*min"])
def test_a_pattern_granting_admin_makes_an_admin(pattern: str) -> None:
    assert Principal("p", (pattern,)).is_admin


def test_non_admin_only_gets_what_its_patterns_grant() -> None:
    deployer = Principal("key:d", ("commands.run:deploy.*", "commands.list"))
    assert not deployer.is_admin
    assert deployer.can("commands.run:deploy.prod")
    assert deployer.can("commands.list")
    assert not deployer.can("commands.run:echo")
    assert not deployer.can("state.read:team-a.config")
    assert not deployer.can(ADMIN)


def test_no_permissions_grants_nothing() -> None:
    nobody = Principal("key:n", ())
    assert not nobody.is_admin
    assert not nobody.can("commands.list")
    assert not nobody.can("")


@pytest.mark.parametrize(
    "principal",
    [
        Principal("key:abc", ("commands.run:deploy.*", "state.read:team-a.*"), "api_key", "abc", {"quota": 10}),
        Principal("https://issuer.example|user-1", ("admin",), kind="jwt"),
        Principal("key:empty", ()),
    ],
)
def test_principal_round_trips_through_the_authorizer_context(principal: Principal) -> None:
    context = principal.to_authorizer_context()
    assert all(isinstance(v, str) for v in context.values()), "API Gateway drops non-scalar context values"
    assert Principal.from_authorizer_context(context) == principal
    # What the api function sees: API Gateway adds principalId next to the context values.
    assert Principal.from_authorizer_context({"principalId": principal.principal_id, **context}) == principal


def test_permissions_travel_as_one_json_string() -> None:
    context = Principal("p", ("a", "b*")).to_authorizer_context()
    assert json.loads(context["permissions"]) == ["a", "b*"]
    assert "key_id" not in context
    assert "rate_limit" not in context


@pytest.mark.parametrize(
    "context",
    [
        None,
        {},
        {"permissions": "[]"},
        {"principal_id": 5, "permissions": "[]"},
        {"principal_id": None},
        {"principal_id": "p", "permissions": "not json"},
        {"principal_id": "p", "permissions": '{"admin": true}'},
        {"principal_id": "p", "permissions": '"admin"'},
        {"principal_id": "p", "permissions": "[1, 2]"},
        {"principal_id": "p", "permissions": '["admin", null]'},
        {"principal_id": "p", "permissions": 7},
        {"principal_id": "p", "permissions": ["admin"]},
        {"principal_id": "p", "permissions": "[]", "rate_limit": "{broken"},
    ],
)
def test_malformed_context_gives_no_principal(context: dict[str, Any] | None) -> None:
    assert Principal.from_authorizer_context(context) is None


def test_missing_permissions_mean_none_and_odd_rate_limit_is_dropped() -> None:
    principal = Principal.from_authorizer_context({"principal_id": "p", "rate_limit": "[1, 2]"})
    assert principal == Principal("p", (), "api_key", None, {})
