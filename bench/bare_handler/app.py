"""A bare handler for the benchmark: the DynamoDB and SQS calls of a sync idempotent echo, nothing else.

No Powertools, no pydantic, no layer: only boto3 as the Lambda runtime ships it. The
ratio of the real api function's latency to this one's is the cost of the layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from typing import Any

import boto3

dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")
EXECUTIONS = os.environ["EXECUTIONS_TABLE"]
IDEMPOTENCY = os.environ["IDEMPOTENCY_TABLE"]
CONTROL = os.environ["CONTROL_TABLE"]
EVENTS_QUEUE = os.environ["EVENTS_QUEUE_URL"]
CALLS_PER_REQUEST = {"dynamodb": int(os.environ.get("BARE_RATE_LIMIT_CALLS", "1")) + 4, "sqs": 1}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now = int(time.time())
    principal = event["requestContext"]["authorizer"]["principal_id"]
    key = event["headers"]["Idempotency-Key"]
    body = json.loads(event["body"] or "{}")
    for _ in range(int(os.environ.get("BARE_RATE_LIMIT_CALLS", "1"))):
        dynamodb.update_item(
            TableName=CONTROL,
            Key={"pk": {"S": f"rl#{principal}#echo"}},
            UpdateExpression="SET tat = :t, expires_at = :e",
            ExpressionAttributeValues={":t": {"N": str(now)}, ":e": {"N": str(now + 60)}},
        )
    idempotency_id = "bench#" + hashlib.sha256(f"{principal}\n{key}".encode()).hexdigest()
    dynamodb.put_item(
        TableName=IDEMPOTENCY,
        Item={"id": {"S": idempotency_id}, "status": {"S": "INPROGRESS"}, "expiration": {"N": str(now + 86400)}},
        ConditionExpression="attribute_not_exists(id)",
    )
    execution_id = uuid.uuid4().hex
    dynamodb.put_item(
        TableName=EXECUTIONS,
        Item={
            "execution_id": {"S": execution_id},
            "status": {"S": "running"},
            "command": {"S": "echo"},
            "principal_id": {"S": principal},
            "params_json": {"S": json.dumps(body)},
            "created_at": {"S": str(now)},
            "attempts": {"N": "1"},
        },
        ConditionExpression="attribute_not_exists(execution_id)",
    )
    result = dict(body)
    dynamodb.update_item(
        TableName=EXECUTIONS,
        Key={"execution_id": {"S": execution_id}},
        UpdateExpression="SET #s = :s, result_json = :r",
        ConditionExpression="#s = :running",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": "succeeded"},
            ":r": {"S": json.dumps(result)},
            ":running": {"S": "running"},
        },
    )
    sqs.send_message(QueueUrl=EVENTS_QUEUE, MessageBody=json.dumps({"execution_id": execution_id}))
    response_body = json.dumps(
        {"execution_id": execution_id, "command": "echo", "status": "succeeded", "result": result}
    )
    dynamodb.update_item(
        TableName=IDEMPOTENCY,
        Key={"id": {"S": idempotency_id}},
        UpdateExpression="SET #s = :c, #d = :d",
        ExpressionAttributeNames={"#s": "status", "#d": "data"},
        ExpressionAttributeValues={":c": {"S": "COMPLETED"}, ":d": {"S": response_body}},
    )
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": response_body}
