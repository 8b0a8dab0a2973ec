"""The testing pack's `count`: its counter moves once per execution id, however often it is attempted."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import boto3

from cmdgate.commands import CommandContext
from cmdgate_commands.testing.count import CountParams, count

TABLE = "unit-ControlTable"  # made by the `table_like` fixture


class Services:
    """Just what `count` uses of the composition root."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(control_table=TABLE)
        self._client = boto3.client("dynamodb", region_name="us-east-1")

    def aws_client(self, service: str) -> Any:
        assert service == "dynamodb"
        return self._client


def context(services: Services, execution_id: str, attempt: int = 1) -> CommandContext:
    return CommandContext(execution_id, "key:alice", attempt, time.monotonic() + 5, services=services)  # type: ignore[arg-type]


def test_count_moves_once_per_execution_id(table_like: Callable[[str], Any]) -> None:
    table_like("ControlTable")
    services = Services()
    params = CountParams(key="k1")
    first = count(params, context(services, "exec1"))
    again = [count(params, context(services, "exec1", attempt)) for attempt in (2, 3)]  # retries of the same run
    other = count(params, context(services, "exec2"))
    assert first == {"executions": 1}
    assert again == [{"executions": 1}, {"executions": 1}]
    assert other == {"executions": 2}
    assert count(CountParams(key="k2"), context(services, "exec1")) == {"executions": 1}  # per key
