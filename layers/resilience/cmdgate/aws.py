"""Lazily created boto3 clients, reused across invocations of one environment.

botocore retries in `standard` mode are the only retry layer for AWS calls;
our own retry module is for HTTP downstreams, SQS redelivery for whole messages.
"""

from __future__ import annotations

from functools import cache
from typing import Any

AWS_CLIENT_CONFIG = {"retries": {"mode": "standard", "max_attempts": 3}, "connect_timeout": 2, "read_timeout": 5}


@cache
def client(service: str) -> Any:
    """A boto3 client for `service` (honours AWS_ENDPOINT_URL for the local stack)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(service, config=Config(**AWS_CLIENT_CONFIG))


@cache
def dynamodb_table(name: str) -> Any:
    """A DynamoDB Table resource (document-level API)."""
    import boto3
    from botocore.config import Config

    resource = boto3.session.Session().resource("dynamodb", config=Config(**AWS_CLIENT_CONFIG))
    return resource.Table(name)
