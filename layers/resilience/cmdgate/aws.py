"""Lazily created boto3 clients, reused across invocations of one environment.

botocore retries in `standard` mode are the only retry layer for AWS calls (save the release
of an idempotency marker, see cmdgate.retry); our own retry module is for HTTP downstreams, SQS
redelivery for whole messages. Under sustained throttling botocore's retry quota (500 tokens,
5 per retry) runs out and calls are no longer retried: that is load shedding, by design.
Every client counts its calls (a botocore event hook), so a handler can report
the AWS round trips of each invocation.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

AWS_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)

_calls: Counter[str] = Counter()
_calls_lock = threading.Lock()


def _count_call(event_name: str, **kwargs: Any) -> None:
    # event_name is "before-call.<service>.<Operation>"; retries do not pass here again.
    _, service, operation = event_name.split(".", 2)
    with _calls_lock:
        _calls[f"{service}.{operation}"] += 1


def _instrumented(aws_client: Any) -> Any:
    aws_client.meta.events.register("before-call.*.*", _count_call)
    return aws_client


def take_call_counts() -> dict[str, int]:
    """AWS calls made since the last take (one invocation's worth, when taken per invocation)."""
    with _calls_lock:
        counts = dict(_calls)
        _calls.clear()
    return counts


_session_lock = threading.Lock()


@cache
def session() -> boto3.session.Session:
    """This environment's one boto3 session. Every client and resource comes from it, so the service
    models, endpoint rules and credentials are loaded once per cold start, not once per client (a
    session per client cost the authorizer and the api function a second load of each)."""
    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """A boto3 client for `service` (honours AWS_ENDPOINT_URL for the local stack)."""
    with _session_lock:  # a boto3 session is not safe to build clients from in several threads at once
        return _instrumented(session().client(service, config=AWS_CLIENT_CONFIG))


@cache
def dynamodb_resource() -> Any:
    """The DynamoDB resource (document-level API) of the session, with the counted client settings."""
    with _session_lock:
        resource = session().resource("dynamodb", config=AWS_CLIENT_CONFIG)
    _instrumented(resource.meta.client)
    return resource


@cache
def dynamodb_table(name: str) -> Any:
    """A DynamoDB Table resource; every table shares one resource (one client)."""
    return dynamodb_resource().Table(name)


def item_reader(dynamodb: Any, table_name: str, key_name: str) -> Callable[[str], dict[str, Any] | None]:
    """A consistent GetItem by a string hash key through the low-level client, the item deserialized as
    the Table resource gives it (numbers as Decimal). Building the DynamoDB resource costs a cold start
    about half again the `import boto3` floor's client; a path that only reads one item skips it."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()

    def read(value: str) -> dict[str, Any] | None:
        item = dynamodb.get_item(TableName=table_name, Key={key_name: {"S": value}}, ConsistentRead=True).get("Item")
        return {name: deserializer.deserialize(typed) for name, typed in item.items()} if item else None

    return read


def report_calls(logger: Any, metrics: Any, resource: str, **extra: Any) -> None:
    """Log and count the AWS round trips taken since the last take (one request's worth)."""
    counts = take_call_counts()
    dynamodb = sum(n for name, n in counts.items() if name.startswith("dynamodb."))
    metrics.add_metric(name="DynamoDBCallsPerRequest", unit="Count", value=dynamodb)
    logger.info("aws calls", extra={"resource": resource, "aws_calls": counts, "dynamodb_calls": dynamodb, **extra})
