"""The cold-start floor: what any function on the Lambda python runtime pays at least.

It imports boto3 as the runtime ships it, creates one DynamoDB client at init and makes one
GetItem per invocation, the first AWS call of the authorizer (the API key lookup). No layer,
no Powertools, no pydantic. bench/cold_start.py measures each function's Init Duration plus
first invocation against this one's, in the same run.
"""

from __future__ import annotations

import os
from typing import Any

import boto3

dynamodb = boto3.client("dynamodb")
TABLE = os.environ["KEYS_TABLE"]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    item = dynamodb.get_item(TableName=TABLE, Key={"key_hash": {"S": "floor"}}, ConsistentRead=True)
    return {"found": "Item" in item}
