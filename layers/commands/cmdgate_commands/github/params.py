"""What a caller may ask of the github pack: names GitHub accepts, and GitHub's own size limits."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_INPUTS = 25  # GitHub: at most 25 workflow inputs
MAX_PAYLOAD_PROPERTIES = 10  # GitHub: at most 10 top-level client_payload properties
MAX_PAYLOAD_BYTES = 64 * 1024  # GitHub: the client_payload must be under 64 KB

Owner = Annotated[str, Field(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$", description="User or organisation login.")]
Repo = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$", description="Repository name (not . or ..).")]
InputValue = Annotated[str, Field(max_length=4096)] | bool | int | float


def _real_name(repo: str) -> str:
    if repo in (".", ".."):
        raise ValueError("a repository is not named . or ..")
    return repo


class WorkflowDispatchParams(BaseModel):
    """A workflow run to start: the workflow's file name (or numeric id), the ref and its inputs."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    owner: Owner
    repo: Repo
    workflow: str = Field(
        pattern=r"^(?:[0-9]{1,20}|[A-Za-z0-9._-]{1,200}\.ya?ml)$",
        description="The workflow file name (deploy.yml) or its numeric id.",
    )
    ref: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9._/+@-]+$",
        description="The branch or tag the workflow runs on (no `..`).",
    )
    inputs: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")], InputValue] = Field(
        default_factory=dict, max_length=MAX_INPUTS, description="The workflow's inputs (at most 25)."
    )

    @field_validator("repo")
    @classmethod
    def _not_a_dot_path(cls, repo: str) -> str:
        return _real_name(repo)

    @field_validator("ref")
    @classmethod
    def _no_parent_steps(cls, ref: str) -> str:
        if ".." in ref:
            raise ValueError("a ref has no '..'")
        return ref


class RepositoryDispatchParams(BaseModel):
    """A repository_dispatch event: its type and a small JSON payload."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    owner: Owner
    repo: Repo
    event_type: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    client_payload: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_PAYLOAD_PROPERTIES,
        description="At most 10 top-level properties, under 64 KB as JSON.",
    )

    @field_validator("repo")
    @classmethod
    def _not_a_dot_path(cls, repo: str) -> str:
        return _real_name(repo)

    @field_validator("client_payload")
    @classmethod
    def _payload_fits(cls, payload: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(payload, separators=(",", ":")).encode("utf-8")) >= MAX_PAYLOAD_BYTES:
            raise ValueError("client_payload must be under 64 KB as JSON")
        return payload
