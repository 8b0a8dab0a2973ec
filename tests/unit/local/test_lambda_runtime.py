"""The local Lambda pool refuses an event over Lambda's synchronous invoke limit, as Lambda does."""

from __future__ import annotations

from typing import Any

import pytest

from cmdgate_local.lambda_runtime import MAX_INVOKE_PAYLOAD_BYTES, FunctionPool, InvokeResult, PayloadTooLarge


class FakeEnvironment:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.runtime = type("Runtime", (), {"name": "ApiFunction"})()

    def start(self) -> None:
        pass

    def invoke(self, payload: bytes) -> InvokeResult:
        self.payloads.append(payload)
        return InvokeResult(b"{}", False, 1.0, False, 0)


def pool_of(env: FakeEnvironment) -> FunctionPool:
    pool = FunctionPool([env])  # type: ignore[list-item]
    pool.start()
    return pool


def test_an_event_over_the_invoke_limit_never_reaches_an_environment() -> None:
    env = FakeEnvironment()
    with pytest.raises(PayloadTooLarge):
        pool_of(env).invoke({"body": "x" * MAX_INVOKE_PAYLOAD_BYTES})
    assert env.payloads == []


def test_an_event_at_the_limit_is_invoked() -> None:
    env = FakeEnvironment()
    event: dict[str, Any] = {"body": ""}
    event["body"] = "x" * (MAX_INVOKE_PAYLOAD_BYTES - len('{"body": ""}'))
    pool_of(env).invoke(event)
    assert len(env.payloads[0]) == MAX_INVOKE_PAYLOAD_BYTES
