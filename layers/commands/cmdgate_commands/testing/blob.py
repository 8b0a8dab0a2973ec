"""`blob`: returns a result of a chosen size, to exercise the result size limit."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, command


class BlobParams(BaseModel):
    """Size of the result."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    kib: int = Field(ge=0, le=1024)


@command(
    "blob",
    description="Return a string of `kib` KiB (testing pack).",
    params=BlobParams,
    timeout_s=5,
    retry_safe=True,
)
def blob(params: BlobParams, context: CommandContext) -> dict[str, str]:
    """A result of about `kib` KiB."""
    return {"data": "x" * (params.kib * 1024)}
