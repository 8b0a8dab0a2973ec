"""Typed answers of the Gist API: only the fields cmdgate uses; GitHub's others are ignored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    # Frozen because the client hands out cached instances: nobody may change them in place.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ChangeStatus(_Model):
    """Lines added and deleted by one revision."""

    total: int | None = None
    additions: int | None = None
    deletions: int | None = None


class GistCommit(_Model):
    """One revision of a gist, as listed by /commits and in a gist's `history` (newest first)."""

    version: str  # the revision sha; GET /gists/{id}/{version} reads it
    committed_at: datetime
    change_status: ChangeStatus = Field(default_factory=ChangeStatus)


class GistFile(_Model):
    """One file of a gist; `content` is cut at 1 MiB when `truncated` (read it with GistClient.read_file)."""

    filename: str
    size: int = 0  # bytes of the whole file, UTF-8
    truncated: bool = False
    content: str | None = None
    raw_url: str | None = None


class Gist(_Model):
    """A gist at one revision: its files and its history up to that revision."""

    id: str
    description: str | None = None
    public: bool = False
    files: dict[str, GistFile]
    history: list[GistCommit] = Field(default_factory=list)
    updated_at: datetime

    @property
    def version(self) -> str | None:
        """The sha of the revision this object shows (the newest in its history)."""
        return self.history[0].version if self.history else None


class GistFileSummary(_Model):
    """One file of a listed gist: GitHub's list answers carry no content (read the gist for it)."""

    filename: str
    size: int = 0  # bytes, UTF-8
    raw_url: str | None = None


class GistSummary(_Model):
    """A gist as GET /gists lists it (GitHub's `base-gist`): names and sizes of its files, no content, no history."""

    id: str
    description: str | None = None
    public: bool = False
    files: dict[str, GistFileSummary]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RateLimit:
    """GitHub's primary rate limit as its last answer reported it (`x-ratelimit-*`)."""

    limit: int | None
    remaining: int
    used: int | None
    reset_at: float  # epoch seconds when the window resets
    resource: str | None
    observed_at: float  # the client's wall clock when the answer arrived
