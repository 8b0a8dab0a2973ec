"""X-Ray subsegments through Powertools' Tracer, only where a deployment asks for them.

Lambda's active tracing (`Tracing: Active`) records every invocation's segments (init, invocation,
overhead) without any SDK in the function. The X-Ray SDK adds subsegments per handler and per AWS
call, and costs every cold start its import (about a third of the `import boto3` floor) even when
disabled, since Powertools' Tracer imports it to switch it off. So the functions trace through
`tracer()`: Powertools' Tracer when `CMDGATE_XRAY_SDK` is `on` (the template's `XRaySdk` parameter)
and `POWERTOOLS_TRACE_DISABLED` is not set, else a stand-in whose decorators return the function
unchanged and which never imports the SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])
SWITCH = "CMDGATE_XRAY_SDK"


class HandlerTracer(Protocol):
    """The part of Powertools' Tracer the functions use."""

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        """Wrap the handler in a subsegment."""

    def capture_method(self, method: F) -> F:
        """Wrap a function in a subsegment."""


class NoTracer:
    """Tracing off: each decorator hands the function back untouched."""

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        """The handler itself."""
        return lambda_handler

    def capture_method(self, method: F) -> F:
        """The function itself."""
        return method


def sdk_enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether this function loads the X-Ray SDK: asked for, and not disabled by Powertools' own switch."""
    disabled = environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")
    return environ.get(SWITCH, "off").strip().lower() == "on" and not disabled


def tracer() -> HandlerTracer:
    """Powertools' Tracer (X-Ray SDK, botocore patched) when enabled, else NoTracer."""
    if not sdk_enabled():
        return NoTracer()
    from aws_lambda_powertools import Tracer

    return cast(HandlerTracer, Tracer())
