"""What an AWS error says, read without importing botocore (its exceptions are untyped here)."""

from __future__ import annotations

CONDITION_FAILED = "ConditionalCheckFailedException"
# AWS saying "not now": throttling, with botocore's own retries already spent.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "Throttling",
        "TooManyRequestsException",
    }
)


def error_code(exc: BaseException) -> str | None:
    """The `Error.Code` of a botocore `ClientError`; None for any other exception."""
    response: object = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    error: object = response.get("Error")
    code: object = error.get("Code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def is_condition_failure(exc: BaseException) -> bool:
    """True when a DynamoDB write was refused by its condition expression."""
    return error_code(exc) == CONDITION_FAILED


def is_unavailable(exc: BaseException) -> bool:
    """True when AWS throttled the call or failed it on its side (HTTP 5xx): worth retrying later.

    Wrapped errors count by their cause (Powertools' idempotency raises its own error from botocore's)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if error_code(seen) in THROTTLING_CODES:
            return True
        response: object = getattr(seen, "response", None)
        metadata: object = response.get("ResponseMetadata") if isinstance(response, dict) else None
        status: object = metadata.get("HTTPStatusCode") if isinstance(metadata, dict) else None
        if isinstance(status, int) and status >= 500:
            return True
        seen = seen.__cause__
    return False


def unavailable_details(exc: BaseException) -> dict[str, str]:
    """What a log line says of an unavailable dependency: the error's type, the AWS code and operation
    of the cause (botocore's `operation_name`), and the wrapper's first words when it wraps one."""
    details = {"error_type": type(exc).__name__}
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        code, operation = error_code(seen), getattr(seen, "operation_name", None)
        if code is not None:
            details["aws_code"] = code
            if isinstance(operation, str):
                details["operation"] = operation
            break
        if seen is exc and seen.__cause__ is not None and seen.args:
            details["wrapped_by"] = str(seen.args[0])[:80]
        seen = seen.__cause__
    return details
