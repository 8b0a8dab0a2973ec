"""template.yaml's function policies as grants, and the check of recorded calls against them."""

from __future__ import annotations

from typing import Any

import pytest

from cmdgate_local.iam import SAM_POLICY_TEMPLATES, Grant, UnknownPolicy, check, function_grants
from cmdgate_local.template import Template

PHYSICAL = {
    "KeysTable": {"Ref": "keys-table", "Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/keys-table"},
    "ExecutionsTable": {"Ref": "executions", "Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/executions"},
    "ExecutionsQueue": {"Ref": "http://q/executions", "QueueUrl": "http://q/executions", "QueueName": "executions"},
}


@pytest.fixture
def template(template_data: dict[str, Any]) -> Template:
    return Template(template_data, {"JwtSecretArn": "arn:jwt"})


def actions(grants: list[Grant]) -> set[str]:
    return {action for grant in grants for action in grant.actions}


def test_the_authorizer_may_only_read_keys_by_hash_and_its_jwt_secret(template: Template) -> None:
    grants = function_grants(template, "AuthorizerFunction")
    assert actions(grants) == {"dynamodb:GetItem", "secretsmanager:GetSecretValue"}
    assert {r for g in grants for r in g.resources} == {"KeysTable", "JwtSecretArn"}


def test_a_condition_drops_a_grant(template_data: dict[str, Any]) -> None:
    grants = function_grants(Template(template_data), "AuthorizerFunction")  # JwtSecretArn empty
    assert actions(grants) == {"dynamodb:GetItem"}


def test_no_function_is_granted_kms_encrypt_or_table_wide_crud(template: Template) -> None:
    for function_id in template.functions():
        granted = actions(function_grants(template, function_id))
        assert "kms:Encrypt" not in granted, function_id  # envelopes use GenerateDataKey, never Encrypt
        batch_writes = [g for g in function_grants(template, function_id) if "dynamodb:BatchWriteItem" in g.actions]
        if function_id == "ApiFunction":  # state recovery rebuilds version logs, on the state table only
            assert [g.resources for g in batch_writes] == [("StateTable",)]
        else:
            assert "dynamodb:BatchWriteItem" not in granted, function_id


def test_a_call_outside_the_policy_is_a_finding(template: Template) -> None:
    calls = {
        "AuthorizerFunction": [
            {"action": "dynamodb:GetItem", "resources": ["keys-table"], "count": 3},
            {"action": "dynamodb:Scan", "resources": ["keys-table"], "count": 1},
            {"action": "dynamodb:GetItem", "resources": ["executions"], "count": 1},  # another table
        ]
    }
    refused, unused = check(template, PHYSICAL, calls)
    assert [(f.action, f.resources) for f in refused] == [
        ("dynamodb:Scan", ("keys-table",)),
        ("dynamodb:GetItem", ("executions",)),
    ]
    assert unused["AuthorizerFunction"] == {"secretsmanager:GetSecretValue on JwtSecretArn"}


def test_wildcard_actions_and_index_resources_match(template: Template) -> None:
    calls = {
        "ApiFunction": [
            {"action": "sqs:SendMessage", "resources": ["http://q/executions"]},
            {"action": "dynamodb:Query", "resources": ["executions"]},  # on the by_status index
        ]
    }
    refused, _ = check(template, PHYSICAL, calls)
    assert refused == []


def test_unknown_policy_templates_are_refused_not_ignored(template_data: dict[str, Any]) -> None:
    data = {**template_data, "Resources": dict(template_data["Resources"])}
    function = data["Resources"]["HealerFunction"]
    data["Resources"]["HealerFunction"] = {
        **function,
        "Properties": {**function["Properties"], "Policies": ["AmazonDynamoDBFullAccess"]},
    }
    with pytest.raises(UnknownPolicy):
        function_grants(Template(data), "HealerFunction")


def test_every_template_policy_is_in_the_table(template: Template) -> None:
    for function_id in template.functions():
        function_grants(template, function_id)  # raises UnknownPolicy otherwise
    assert "DynamoDBCrudPolicy" in SAM_POLICY_TEMPLATES


HOOK_PHYSICAL = {
    **PHYSICAL,
    "ApiFunction": {
        "Ref": "cmdgate-local-ApiFunction",
        "Arn": "arn:aws:lambda:us-east-1:123456789012:function:cmdgate-local-ApiFunction",
        "Version": "arn:aws:lambda:us-east-1:123456789012:function:cmdgate-local-ApiFunction:1",
        "Alias": "arn:aws:lambda:us-east-1:123456789012:function:cmdgate-local-ApiFunction:live",
    },
}
GROUP = "arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:cmdgate-local-ServerlessDeploymentApplication"


def hook_call(action: str, resource: str) -> dict[str, Any]:
    return {"action": action, "resources": [resource]}


def test_the_hook_may_invoke_the_new_version_but_not_the_alias(template: Template) -> None:
    version, alias = HOOK_PHYSICAL["ApiFunction"]["Version"], HOOK_PHYSICAL["ApiFunction"]["Alias"]
    calls = {"PreTrafficHookFunction": [hook_call("lambda:InvokeFunction", r) for r in (version, alias)]}
    refused, _ = check(template, HOOK_PHYSICAL, calls)
    assert [(f.action, f.resources) for f in refused] == [("lambda:InvokeFunction", (alias,))]


def test_the_hook_reports_to_this_applications_deployment_groups_only(template: Template) -> None:
    action = "codedeploy:PutLifecycleEventHookExecutionStatus"
    ours, theirs = f"{GROUP}/ApiFunction", GROUP.replace("cmdgate-local", "other") + "/ApiFunction"
    refused, _ = check(
        template, HOOK_PHYSICAL, {"PreTrafficHookFunction": [hook_call(action, r) for r in (ours, theirs)]}
    )
    assert [f.resources for f in refused] == [(theirs,)]


def test_the_hooks_key_grants_cannot_read_or_scan_keys(template: Template) -> None:
    grants = function_grants(template, "PreTrafficHookFunction")
    assert not {"dynamodb:GetItem", "dynamodb:Scan", "dynamodb:DeleteItem"} & actions(grants)


MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:deploy"
PACK_PARAMETERS = {
    "AwsPackStateMachineArn": MACHINE,
    "AwsPackEventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/ops",
    "AwsPackQueueArn": "arn:aws:sqs:us-east-1:123456789012:jobs",
}


@pytest.mark.parametrize("function_id", ["ApiFunction", "WorkerFunction"])
def test_the_aws_pack_may_use_only_the_resources_its_parameters_name(
    template_data: dict[str, Any], function_id: str
) -> None:
    template = Template(template_data, PACK_PARAMETERS)
    ours = [
        {"action": "states:StartExecution", "resources": [MACHINE]},
        {"action": "states:DescribeExecution", "resources": [MACHINE]},  # an execution, recorded as its machine
        {"action": "events:PutEvents", "resources": [PACK_PARAMETERS["AwsPackEventBusArn"]]},
        {"action": "sqs:SendMessage", "resources": [PACK_PARAMETERS["AwsPackQueueArn"]]},
    ]
    others = [
        {"action": "states:StartExecution", "resources": [MACHINE + "-other"]},
        {"action": "events:PutEvents", "resources": ["default"]},
        {"action": "sqs:SendMessage", "resources": ["arn:aws:sqs:us-east-1:123456789012:other"]},
    ]
    refused, _ = check(template, {}, {function_id: ours + others})
    assert [(f.action, f.resources[0]) for f in refused] == [(c["action"], c["resources"][0]) for c in others]


def test_without_its_parameters_the_aws_pack_is_granted_nothing(template: Template) -> None:
    granted = actions(function_grants(template, "WorkerFunction"))
    assert not {a for a in granted if a.startswith(("states:", "events:"))}
    assert "sqs:GetQueueUrl" not in granted
