"""The one resource each aws command may use: the configured ARN, and what a caller may name."""

from __future__ import annotations

from cmdgate.commands import CommandError


def allowed_target(configured: str, requested: str | None, parameter: str) -> str:
    """`configured`, when `requested` is absent or the same; 403 for any other, 503 when none is configured."""
    if not configured:
        raise CommandError(
            f"This command has no resource: set the template parameter {parameter}.",
            status=503,
            code="COMMAND_NOT_CONFIGURED",
        )
    if requested is not None and requested != configured:
        raise CommandError(
            f"This deployment allows only the resource named by {parameter}.", status=403, code="RESOURCE_NOT_ALLOWED"
        )
    return configured


def queue_name_and_account(queue_arn: str) -> tuple[str, str]:
    """`arn:aws:sqs:<region>:<account>:<name>` -> (name, account)."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise CommandError("AwsPackQueueArn is not an SQS queue ARN.", status=503, code="COMMAND_NOT_CONFIGURED")
    return parts[5], parts[4]
