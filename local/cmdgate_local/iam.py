"""Each function's IAM policy in template.yaml as (actions, resources) grants, to check recorded calls against.

moto does not enforce IAM, so the integration suite records every AWS call each function makes
(`moto_endpoint.recording`) and `check` says which of them its policy would refuse. Resources
are matched coarsely: a grant names resources by logical id (or template parameter), and a call
is allowed when every resource it names is one of a grant's resources' physical identifiers
(name, URL, ARN, key id) - table indexes, ARN patterns and conditions are not modelled.

The SAM policy templates used by template.yaml, with their actions as SAM defines them
(samtranslator/policy_templates_data/policy_templates.json, aws-sam-translator 1.x; each
template's one statement covers the named resource only):
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cmdgate_local.template import ACCOUNT_ID, REGION, STACK_NAME, Template

SAM_POLICY_TEMPLATES: dict[str, tuple[tuple[str, ...], str]] = {
    "DynamoDBCrudPolicy": (
        (
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ),
        "TableName",
    ),
    "DynamoDBReadPolicy": (
        ("dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"),
        "TableName",
    ),
    "DynamoDBWritePolicy": (("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"), "TableName"),
    "SQSSendMessagePolicy": (("sqs:SendMessage*",), "QueueName"),
    "SQSPollerPolicy": (
        (
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ),
        "QueueName",
    ),
    "KMSEncryptPolicy": (("kms:Encrypt",), "KeyId"),
    "KMSDecryptPolicy": (("kms:Decrypt",), "KeyId"),
    "SNSPublishMessagePolicy": (("sns:Publish",), "TopicName"),
    "AWSSecretsManagerGetSecretValuePolicy": (("secretsmanager:GetSecretValue",), "SecretArn"),
}


_SUB_ARN = re.compile(r"\$\{(\w+)\.Arn\}(/index/[\w.*-]+)?")


@dataclass(frozen=True)
class Grant:
    """Actions (IAM patterns such as `sqs:SendMessage*`) on resources (logical ids or parameter names)."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def allows_action(self, action: str) -> bool:
        """Whether one of this grant's action patterns matches `action` (case-insensitive, as IAM)."""
        return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in self.actions)


class UnknownPolicy(ValueError):
    """template.yaml uses a managed policy or policy template this module has no table entry for."""


def function_grants(template: Template, function_id: str) -> list[Grant]:
    """The grants of one function's `Policies` (conditions evaluated with the template's parameters)."""
    props = template.resources[function_id].get("Properties", {})
    grants: list[Grant] = []
    for policy in props.get("Policies", []):
        policy = _unless_no_value(template, policy)
        if policy is None:
            continue
        if not isinstance(policy, dict) or len(policy) != 1:
            raise UnknownPolicy(f"{function_id}: policy {policy!r} is not a template or a statement list")
        ((name, body),) = policy.items()
        if name == "Statement":
            grants.extend(_statement_grant(function_id, statement) for statement in body)
        elif name in SAM_POLICY_TEMPLATES:
            actions, parameter = SAM_POLICY_TEMPLATES[name]
            grants.append(Grant(actions, (_referenced(body[parameter]),)))
        else:
            raise UnknownPolicy(f"{function_id}: policy template {name} is not in SAM_POLICY_TEMPLATES")
    return grants


def _statement_grant(function_id: str, statement: Mapping[str, Any]) -> Grant:
    if statement.get("Effect") != "Allow":
        raise UnknownPolicy(f"{function_id}: only Allow statements are modelled")
    actions = statement["Action"]
    resources = statement["Resource"]
    return Grant(
        tuple([actions] if isinstance(actions, str) else actions),
        tuple(dict.fromkeys(_referenced(r) for r in ([resources] if not isinstance(resources, list) else resources))),
    )


def _referenced(value: Any) -> str:
    """The logical id (or parameter) a `!Ref X` / `!GetAtt X.Attr` names; `*` stays `*`."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        found = _SUB_ARN.fullmatch(value["Fn::Sub"])  # "${Table.Arn}/index/name": the table, coarsely
        if found:
            return found.group(1)
        if isinstance(value.get("Fn::Sub"), str) and value["Fn::Sub"].startswith("arn:"):
            return str(value["Fn::Sub"])  # an ARN pattern, matched with its wildcards
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), list):
        # `!Sub [pattern, {Var: ...!Ref Param...}]` built from one parameter (a state machine's
        # executions from its ARN): that parameter, coarsely.
        refs = set(_refs_in(value["Fn::Sub"][1]))
        if len(refs) == 1:
            return refs.pop()
    if value == "*":
        return "*"
    raise UnknownPolicy(f"resource {value!r} is neither a !Ref, a !GetAtt, a !Sub of an Arn nor '*'")


def _refs_in(value: Any) -> Iterable[str]:
    """Every `Ref` inside a template value, pseudo parameters (AWS::...) left out."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str) and not inner.startswith("AWS::"):
                yield inner
            else:
                yield from _refs_in(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs_in(inner)


def _unless_no_value(template: Template, policy: Any) -> Any:
    if isinstance(policy, dict) and "Fn::If" in policy:
        condition, when_true, when_false = policy["Fn::If"]
        chosen = when_true if template.condition(condition, _parameter_resolver(template)) else when_false
        return None if chosen == {"Ref": "AWS::NoValue"} else chosen
    return policy


def _parameter_resolver(template: Template) -> Any:
    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value:
            return template.parameter(str(value["Ref"]))
        return value

    return resolve


@dataclass(frozen=True)
class Finding:
    """A recorded call no grant of its function allows."""

    function_id: str
    action: str
    resources: tuple[str, ...]
    count: int


def identifiers(
    template: Template, physical: Mapping[str, Mapping[str, str]], names: Iterable[str]
) -> dict[str, frozenset[str]]:
    """Each logical id's (or parameter's) physical identifiers: name, URL, ARN, key id, or the parameter value."""
    found: dict[str, frozenset[str]] = {}
    for name in names:
        if name == "*":
            continue
        if name.startswith("arn:"):
            found[name] = frozenset({_arn_pattern(name, physical)})
        elif name in physical:
            found[name] = frozenset(str(v) for v in physical[name].values())
        elif name.partition(".")[2] in physical.get(name.partition(".")[0], {}):
            logical_id, _, attribute = name.partition(".")  # `!Ref Function.Version`: that one ARN
            found[name] = frozenset({str(physical[logical_id][attribute])})
        elif name in template.data.get("Parameters", {}):
            found[name] = frozenset({template.parameter(name)})
        else:
            found[name] = frozenset()  # a resource not provisioned here: nothing can match it
    return found


def check(
    template: Template,
    physical: Mapping[str, Mapping[str, str]],
    calls_by_function: Mapping[str, Iterable[Mapping[str, Any]]],
) -> tuple[list[Finding], dict[str, set[str]]]:
    """Calls no grant allows, and per function the granted action patterns no call exercised."""
    refused: list[Finding] = []
    unused: dict[str, set[str]] = {}
    for function_id, calls in calls_by_function.items():
        grants = function_grants(template, function_id)
        ids = identifiers(template, physical, {r for g in grants for r in g.resources})
        exercised: set[tuple[int, str]] = set()
        for call in calls:
            action, resources = str(call["action"]), tuple(call["resources"])
            hits = [i for i, g in enumerate(grants) if g.allows_action(action) and _covers(g, ids, resources)]
            if not hits:
                refused.append(Finding(function_id, action, resources, int(call.get("count", 1))))
            exercised.update((i, action) for i in hits)
        unused[function_id] = {
            f"{pattern} on {','.join(grant.resources)}"
            for i, grant in enumerate(grants)
            for pattern in grant.actions
            if not any(index == i and fnmatch.fnmatchcase(a.lower(), pattern.lower()) for index, a in exercised)
        }
    return refused, unused


def _arn_pattern(template_text: str, physical: Mapping[str, Mapping[str, str]]) -> str:
    """A `!Sub` ARN with pseudo parameters and resources filled in; a resource SAM generates (not in
    the template, e.g. ServerlessDeploymentApplication) gets the local stack's default name."""
    pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in pseudo:
            return pseudo[name]
        return str(physical[name]["Ref"]) if name in physical else f"{STACK_NAME}-{name}"

    return re.sub(r"\$\{([\w:]+)\}", fill, template_text)


def _covers(grant: Grant, ids: Mapping[str, frozenset[str]], resources: tuple[str, ...]) -> bool:
    if "*" in grant.resources:
        return True
    allowed = frozenset().union(*(ids.get(r, frozenset()) for r in grant.resources))
    patterns = [a for a in allowed if "*" in a]
    return all(resource in allowed or any(fnmatch.fnmatchcase(resource, p) for p in patterns) for resource in resources)
