"""Fenced writes: the guarded item keeps the highest fence it accepted and refuses older ones.

A lease can end while its holder is paused (a GC pause, a frozen Lambda, a slow
network): the holder wakes up believing it still holds the lock, and its write
would clobber the newer holder's. Time cannot prevent that; the fence does. Each
guarded write carries the writer's fence and commits only under

    (attribute_not_exists(#fence) OR #fence <= :fence_token)

while setting `#fence = :fence_token`. Once a newer holder (larger fence) has
written, every write with an older fence is refused (ConditionalCheckFailed);
the newer holder's own later writes still pass (`<=`, not `<`). A stale write
that lands BEFORE the newer holder's first write still commits: that is what
fencing promises (the store only refuses tokens older than one it has seen), and
the state register adds `version = :read_version`, so the newer holder, which
reads after acquiring, sees that write instead of overwriting it blindly.

    request = {"TableName": table, "Key": key,
               "UpdateExpression": "SET #v = #v + :one, #body = :body",
               "ConditionExpression": "#v = :read_version", ...}
    client.update_item(**fenced_update(request, lease.fence))

Expressions are for the low-level client (typed values such as `{"N": "7"}`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FENCE_ATTRIBUTE = "fence"

_SET_CLAUSE = re.compile(r"(?<![\w#:.])SET(?!\w)", re.IGNORECASE)


def fence_condition(
    token: int,
    *,
    attribute: str = FENCE_ATTRIBUTE,
    name_placeholder: str = "#fence",
    value_placeholder: str = ":fence_token",
) -> tuple[str, dict[str, str], dict[str, dict[str, str]]]:
    """The condition that admits fence `token`, with its attribute names and values."""
    _check_token(token)
    condition = f"(attribute_not_exists({name_placeholder}) OR {name_placeholder} <= {value_placeholder})"
    return condition, {name_placeholder: attribute}, {value_placeholder: {"N": str(token)}}


def fenced_update(request: Mapping[str, Any], token: int, *, attribute: str = FENCE_ATTRIBUTE) -> dict[str, Any]:
    """A copy of UpdateItem kwargs that commits only under fence `token` and records it on the item.

    Works as well on the `Update` member of a TransactWriteItems request. The
    request itself is left unchanged.
    """
    update = request.get("UpdateExpression")
    if not update:
        raise ValueError("a fenced write needs an UpdateExpression")
    names: dict[str, str] = dict(request.get("ExpressionAttributeNames") or {})
    values: dict[str, Any] = dict(request.get("ExpressionAttributeValues") or {})
    condition = request.get("ConditionExpression")
    # The write must not touch the fence itself: two actions on one path is a DynamoDB error,
    # and a condition on the fence of its own would defeat this one.
    bare = re.compile(rf"(?<![\w#:.]){re.escape(attribute)}(?!\w)")
    if attribute in names.values() or bare.search(update) or (condition and bare.search(condition)):
        raise ValueError(f"the request already refers to {attribute!r}")

    name = _free_placeholder("#fence", names)
    value = _free_placeholder(":fence_token", values)
    fence_expression, fence_names, fence_values = fence_condition(
        token, attribute=attribute, name_placeholder=name, value_placeholder=value
    )
    names.update(fence_names)
    values.update(fence_values)

    action = f"{name} = {value}"
    # An expression has at most one SET clause: join it, or add one.
    match = _SET_CLAUSE.search(update)
    update = f"{update[: match.end()]} {action},{update[match.end() :]}" if match else f"{update} SET {action}"

    fenced = dict(request)
    fenced["UpdateExpression"] = update
    fenced["ConditionExpression"] = f"({condition}) AND {fence_expression}" if condition else fence_expression
    fenced["ExpressionAttributeNames"] = names
    fenced["ExpressionAttributeValues"] = values
    return fenced


def _free_placeholder(base: str, taken: Mapping[str, Any]) -> str:
    candidate, suffix = base, 0
    while candidate in taken:
        suffix += 1
        candidate = f"{base}_{suffix}"
    return candidate


def _check_token(token: int) -> None:
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        raise ValueError("a fence token is a non-negative integer")
