"""What a refused request must not have changed: the records a principal owns, state keys, keys, queues."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Stack


def _scan(stack: Stack, logical_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    dynamodb = stack.aws("dynamodb")
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": stack.resource(logical_id), "ConsistentRead": True, **kwargs}
    while True:
        page = dynamodb.scan(**request)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def executions_of(stack: Stack, principal_id: str) -> list[str]:
    """Ids of every execution record the principal owns."""
    items = _scan(
        stack,
        "ExecutionsTable",
        FilterExpression="principal_id = :p",
        ExpressionAttributeValues={":p": {"S": principal_id}},
        ProjectionExpression="execution_id",
    )
    return sorted(item["execution_id"]["S"] for item in items)


def state_items(stack: Stack, fragment: str) -> list[dict[str, Any]]:
    """Every state table item whose partition key contains `fragment` (register, versions, effects)."""
    return _scan(
        stack,
        "StateTable",
        FilterExpression="contains(pk, :f)",
        ExpressionAttributeValues={":f": {"S": fragment}},
    )


def state_versions(stack: Stack, fragment: str) -> list[tuple[str, ...]]:
    """(pk, sk, version, value, deleted) of each state item under `fragment`: what a write would change.

    The gist sync's own bookkeeping on the register (synced_version, revision) is left out: it
    moves on its own after a write.
    """
    return sorted(
        (
            item["pk"]["S"],
            item["sk"]["S"],
            item.get("version", {}).get("N", ""),
            item.get("value_json", {}).get("S", ""),
            str(item.get("deleted", {}).get("BOOL", "")),
        )
        for item in state_items(stack, fragment)
    )


def keys_named(stack: Stack, name: str) -> int:
    """How many API keys carry `name`."""
    return len(
        _scan(
            stack,
            "KeysTable",
            FilterExpression="#n = :n",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":n": {"S": name}},
        )
    )


def execution_item(stack: Stack, execution_id: str) -> dict[str, Any]:
    """The raw execution record (every attribute), for before/after comparisons."""
    found = stack.aws("dynamodb").get_item(
        TableName=stack.resource("ExecutionsTable"), Key={"execution_id": {"S": execution_id}}, ConsistentRead=True
    )
    return dict(found["Item"])
