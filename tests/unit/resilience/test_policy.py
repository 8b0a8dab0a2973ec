"""The authorizer's IAM policy: built from the principal's permissions, valid for every route it may reach.

API Gateway caches the policy per token and reuses it for every route the token calls next (api.md), so
these tests build a policy for one methodArn and evaluate it, with the local gateway's IAM evaluation,
against the others.
"""

from __future__ import annotations

from typing import Any

import pytest

from cmdgate.auth.permissions import Principal
from cmdgate.auth.policy import allow_policy, api_arn_base
from cmdgate_local.apigw import evaluate_policy

BASE = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"


def arn(method: str, path: str, base: str = BASE) -> str:
    return f"{base}/{method}{path}"


ADMIN = Principal("key:admin", ("admin",))
DEPLOYER = Principal("key:deployer", ("commands.run:deploy.*",))
LISTER = Principal("key:lister", ("commands.list",))
NOBODY = Principal("key:nobody", ())
STATE_WRITER = Principal("key:writer", ("state.write:team-a.*",))

# Every route of the API (the ones not yet implemented too: the policy must already gate them).
ALL_ROUTES = [
    ("GET", "/v1/commands"),
    ("POST", "/v1/commands/deploy.prod"),
    ("POST", "/v1/commands/echo"),
    ("GET", "/v1/executions/0123abcd"),
    ("POST", "/v1/executions/0123abcd/cancel"),
    ("GET", "/v1/state/team-a.config"),
    ("GET", "/v1/state/team-a.config/history"),
    ("PUT", "/v1/state/team-a.config"),
    ("PATCH", "/v1/state/team-a.config"),
    ("DELETE", "/v1/state/team-a.config"),
    ("POST", "/v1/state/team-a.config/restore"),
    ("POST", "/v1/admin/keys"),
    ("GET", "/v1/admin/keys"),
    ("DELETE", "/v1/admin/keys/k1"),
    ("GET", "/v1/admin/dlq"),
    ("POST", "/v1/admin/dlq/redrive"),
    ("GET", "/v1/admin/health"),
]


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = policy["policyDocument"]["Statement"]
    return result


def allowed_resources(policy: dict[str, Any]) -> set[str]:
    return {r for s in statements(policy) if s["Effect"] == "Allow" for r in s["Resource"]}


# -- api_arn_base -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method_arn", "expected"),
    [
        (arn("GET", "/v1/commands"), BASE),
        (arn("POST", "/v1/commands/deploy.prod"), BASE),
        (arn("GET", "/"), BASE),
        (f"{BASE}/GET", BASE),
        (f"{BASE}/*/*", BASE),
        (
            "arn:aws-cn:execute-api:cn-north-1:123456789012:zzz999/dev_2/DELETE/v1/state/x",
            "arn:aws-cn:execute-api:cn-north-1:123456789012:zzz999/dev_2",
        ),
    ],
)
def test_api_arn_base(method_arn: str, expected: str) -> None:
    assert api_arn_base(method_arn) == expected


@pytest.mark.parametrize(
    "method_arn",
    [
        "",
        "not-an-arn",
        "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5",
        "arn:aws:execute-api:us-east-1:123456789012:/prod/GET/v1/commands",
        "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5//GET/v1/commands",
    ],
)
def test_api_arn_base_refuses_what_is_not_a_method_arn(method_arn: str) -> None:
    with pytest.raises(ValueError, match="execute-api"):
        api_arn_base(method_arn)


def test_api_arn_base_with_a_colon_in_the_path() -> None:
    assert api_arn_base(arn("GET", "/v1/state/team-a:config")) == BASE


def test_policy_built_on_a_path_with_a_colon_still_covers_the_api() -> None:
    policy = allow_policy(ADMIN, arn("GET", "/v1/state/team-a:config/history"))
    assert evaluate_policy(policy["policyDocument"], arn("GET", "/v1/commands"))


# -- allow_policy ---------------------------------------------------------------


def test_admin_policy_allows_every_route_of_the_stage() -> None:
    policy = allow_policy(ADMIN, arn("GET", "/v1/commands"))
    assert policy["principalId"] == "key:admin"
    assert statements(policy) == [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [f"{BASE}/*/*"]}]
    assert policy["context"] == ADMIN.to_authorizer_context()


def test_command_runner_policy_reaches_run_and_executions_only() -> None:
    policy = allow_policy(DEPLOYER, arn("POST", "/v1/commands/deploy.prod"))
    assert allowed_resources(policy) == {
        f"{BASE}/POST/v1/commands/*",
        f"{BASE}/GET/v1/executions/*",
        f"{BASE}/POST/v1/executions/*/cancel",
    }
    assert all(s["Action"] == "execute-api:Invoke" for s in statements(policy))


def test_lister_policy_reaches_the_catalogue_and_executions() -> None:
    policy = allow_policy(LISTER, arn("GET", "/v1/commands"))
    assert allowed_resources(policy) == {
        f"{BASE}/GET/v1/commands",
        f"{BASE}/GET/v1/executions/*",
        f"{BASE}/POST/v1/executions/*/cancel",
    }


def test_state_writer_policy_reaches_the_write_methods() -> None:
    policy = allow_policy(STATE_WRITER, arn("PUT", "/v1/state/team-a.config"))
    assert allowed_resources(policy) == {
        f"{BASE}/PUT/v1/state/*",
        f"{BASE}/PATCH/v1/state/*",
        f"{BASE}/DELETE/v1/state/*",
        f"{BASE}/POST/v1/state/*",
        f"{BASE}/GET/v1/executions/*",
        f"{BASE}/POST/v1/executions/*/cancel",
    }


def test_principal_without_permissions_reaches_only_its_executions() -> None:
    # api.md: executions need no permission, so the only Allows are reading and cancelling executions.
    policy = allow_policy(NOBODY, arn("GET", "/v1/commands"))
    assert allowed_resources(policy) == {f"{BASE}/GET/v1/executions/*", f"{BASE}/POST/v1/executions/*/cancel"}
    document = policy["policyDocument"]
    for method, path in ALL_ROUTES:
        assert evaluate_policy(document, arn(method, path)) is (path.startswith("/v1/executions/")), (method, path)


def test_policy_does_not_depend_on_the_first_method_arn() -> None:
    policies = [allow_policy(DEPLOYER, arn(method, path)) for method, path in ALL_ROUTES]
    assert all(p == policies[0] for p in policies)


# -- cache reuse: one policy, every route ----------------------------------------

REACHABLE = {
    "admin": {route for route in ALL_ROUTES},
    "deployer+lister": {
        ("GET", "/v1/commands"),
        ("POST", "/v1/commands/deploy.prod"),
        # the policy is per family; the api function re-checks the command's own permission
        ("POST", "/v1/commands/echo"),
        ("GET", "/v1/executions/0123abcd"),
        ("POST", "/v1/executions/0123abcd/cancel"),
    },
    "reader": {
        ("GET", "/v1/executions/0123abcd"),
        ("POST", "/v1/executions/0123abcd/cancel"),
        ("GET", "/v1/state/team-a.config"),
        ("GET", "/v1/state/team-a.config/history"),
    },
}
PRINCIPALS = {
    "admin": ADMIN,
    "deployer+lister": Principal("key:dl", ("commands.run:deploy.*", "commands.list")),
    "reader": Principal("key:r", ("state.read:team-a.*",)),
}


@pytest.mark.parametrize("who", sorted(PRINCIPALS))
@pytest.mark.parametrize(("first_method", "first_path"), [ALL_ROUTES[0], ALL_ROUTES[3], ALL_ROUTES[4]])
def test_a_cached_policy_allows_exactly_the_reachable_routes(who: str, first_method: str, first_path: str) -> None:
    document = allow_policy(PRINCIPALS[who], arn(first_method, first_path))["policyDocument"]
    for method, path in ALL_ROUTES:
        expected = (method, path) in REACHABLE[who]
        assert evaluate_policy(document, arn(method, path)) is expected, (who, method, path)


@pytest.mark.parametrize("who", sorted(PRINCIPALS))
def test_a_cached_policy_never_reaches_another_stage_or_api(who: str) -> None:
    document = allow_policy(PRINCIPALS[who], arn("GET", "/v1/commands"))["policyDocument"]
    other_stage = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev"
    other_api = "arn:aws:execute-api:us-east-1:123456789012:zzzzzzzzzz/prod"
    for method, path in ALL_ROUTES:
        assert not evaluate_policy(document, arn(method, path, other_stage))
        assert not evaluate_policy(document, arn(method, path, other_api))
