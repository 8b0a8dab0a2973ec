"""The seam between the smoke test and the function versions it tries: a synchronous Lambda invoke."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class FunctionAnswer:
    """What one invocation returned: the handler's value (parsed JSON) or its error."""

    payload: Any
    function_error: str | None = None


class FunctionInvoker(Protocol):
    """Invokes one function version with an event and waits for its answer."""

    def invoke(self, function_arn: str, event: dict[str, Any]) -> FunctionAnswer: ...


class LambdaInvoker:
    """`lambda:InvokeFunction` on a qualified ARN (the new version itself, never the alias)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def invoke(self, function_arn: str, event: dict[str, Any]) -> FunctionAnswer:
        """One RequestResponse invocation; an unreadable answer counts as a function error."""
        response = self._client.invoke(
            FunctionName=function_arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        raw = response["Payload"].read()
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            return FunctionAnswer(None, response.get("FunctionError") or "UnreadableAnswer")
        return FunctionAnswer(payload, response.get("FunctionError"))
