"""Gists as a list of revisions: 40-hex shas, line counts per change."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Revision:
    sha: str
    committed_at: float
    files: dict[str, str]
    description: str | None
    additions: int
    deletions: int
    sequence: int  # server-wide write order: orders gists updated in the same clock second


@dataclass
class Gist:
    gist_id: str
    node_id: str
    public: bool
    created_at: float
    # Oldest first; the API lists them newest first.
    revisions: list[Revision]
    # Who created it: a digest of the token (GET /gists lists a token's own gists), never the token.
    owner: str = ""

    @classmethod
    def new(cls, gist_id: str, *, public: bool, now: float, owner: str = "") -> Gist:
        node_id = "G_kwDO" + base64.b64encode(gist_id.encode()).decode().rstrip("=")
        return cls(gist_id=gist_id, node_id=node_id, public=public, created_at=now, revisions=[], owner=owner)

    def find(self, sha: str) -> int | None:
        """Index of the revision with this sha, or None."""
        return next((i for i, rev in enumerate(self.revisions) if rev.sha == sha), None)

    def commit(self, files: dict[str, str], description: str | None, now: float, sequence: int) -> Revision:
        """Append a revision; `sequence` (unique per server) keeps shas distinct for equal content."""
        previous = self.revisions[-1].files if self.revisions else {}
        additions, deletions = line_changes(previous, files)
        parent = self.revisions[-1].sha if self.revisions else ""
        seed = json.dumps([self.gist_id, parent, sequence, now, files, description])
        sha = hashlib.sha1(seed.encode("utf-8"), usedforsecurity=False).hexdigest()
        revision = Revision(sha, now, dict(files), description, additions, deletions, sequence)
        self.revisions.append(revision)
        return revision


def line_changes(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[int, int]:
    """Count added and deleted lines between two file sets."""
    # A multiset difference of lines is linear, unlike difflib, which matters
    # for multi-MiB files; it matches a diff except for moved lines.
    additions = deletions = 0
    for name in set(old) | set(new):
        before = Counter(old.get(name, "").splitlines())
        after = Counter(new.get(name, "").splitlines())
        additions += sum((after - before).values())
        deletions += sum((before - after).values())
    return additions, deletions


def owner_of(token: str) -> str:
    """The owner a token's gists record: a digest, so the server keeps no token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
