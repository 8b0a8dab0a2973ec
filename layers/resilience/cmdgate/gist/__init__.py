"""GitHub Gist API client: auth, API version, ETag caching, rate limits, write spacing, truncation.

client = GistClient(httpx.Client(), lambda: parameters.get_secret("github-token", max_age=300))
gist = client.create_gist({"state.json": "{}"}, "cmdgate state: key")
client.update_file(gist.id, "state.json", '{"version": 2}')
client.update_files(gist.id, {"a.json": "1", "b.json": "2"}, blind_retry=False)  # one PATCH, one revision
mine = client.list_gists(since=datetime(2026, 1, 1, tzinfo=UTC))   # summaries: names and sizes, no content
current = client.get_gist(gist.id)                   # a second call is a free 304
old = client.get_revision(gist.id, current.history[-1].version)   # cached forever
text = client.read_file(old, "state.json")           # raw_url when over 1 MiB
"""

from cmdgate.gist.client import API_VERSION, DEFAULT_BASE_URL, GistClient
from cmdgate.gist.config import GistClientConfig
from cmdgate.gist.exceptions import (
    GistError,
    GistNotFound,
    GistRateLimited,
    GistRequestRejected,
    GistUnavailable,
    GistWriteUnconfirmed,
)
from cmdgate.gist.models import ChangeStatus, Gist, GistCommit, GistFile, GistFileSummary, GistSummary, RateLimit

__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "ChangeStatus",
    "Gist",
    "GistClient",
    "GistClientConfig",
    "GistCommit",
    "GistError",
    "GistFile",
    "GistFileSummary",
    "GistNotFound",
    "GistRateLimited",
    "GistRequestRejected",
    "GistSummary",
    "GistUnavailable",
    "GistWriteUnconfirmed",
    "RateLimit",
]
