"""Helpers for tests against in-process moto: counting calls, serializing them."""

from __future__ import annotations

import threading
from typing import Any


class CallLog:
    """DynamoDB operations a client makes, seen through botocore's event hooks."""

    def __init__(self, client: Any) -> None:
        self.operations: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def take(self) -> list[str]:
        taken, self.operations = self.operations, []
        return taken


class SerializedClient:
    """Runs each call of a client under one lock.

    moto's in-process DynamoDB is NOT atomic under threads: its update_item reads
    the item, evaluates the condition and writes without a lock, so concurrent
    conditional writes can all pass (8 threads x 60 takes on a q=25 bucket
    admitted 26-55 instead of 25 in most runs). Real DynamoDB serialises writes
    to one item; this wrapper restores that property for the threaded tests.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call
