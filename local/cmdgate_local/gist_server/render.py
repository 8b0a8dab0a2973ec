"""A gist, a revision and the commit list as GitHub's JSON shows them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from cmdgate_local.gist_server.revisions import Gist, Revision

# GitHub cuts `content` of a file above 1 MiB in API answers; raw_url has it all.
TRUNCATE_BYTES = 1024 * 1024
# GitHub lists at most 300 files of a gist in API answers.
MAX_LISTED_FILES = 300

# filename extension -> (MIME type, linguist language). Unknown names fall back
# to plain text: GitHub's description types `language` as a non-null string.
_PLAIN_TEXT = ("text/plain", "Text")
_FILE_TYPES: dict[str, tuple[str, str]] = {
    ".json": ("application/json", "JSON"),
    ".txt": ("text/plain", "Text"),
    ".md": ("text/markdown", "Markdown"),
    ".py": ("application/x-python", "Python"),
    ".rb": ("application/x-ruby", "Ruby"),
    ".js": ("application/javascript", "JavaScript"),
    ".yaml": ("application/x-yaml", "YAML"),
    ".yml": ("application/x-yaml", "YAML"),
    ".toml": ("application/toml", "TOML"),
    ".sh": ("application/x-sh", "Shell"),
    ".csv": ("text/csv", "CSV"),
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_type(filename: str) -> tuple[str, str]:
    dot = filename.rfind(".")
    if dot <= 0:
        return _PLAIN_TEXT
    return _FILE_TYPES.get(filename[dot:].lower(), _PLAIN_TEXT)


def user(base: str, login: str) -> dict[str, object]:
    users = f"{base}/users/{login}"
    return {
        "login": login,
        "id": 1,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": f"{base}/avatars/{login}",
        "gravatar_id": "",
        "url": users,
        "html_url": f"{base}/{login}",
        "followers_url": f"{users}/followers",
        "following_url": f"{users}/following{{/other_user}}",
        "gists_url": f"{users}/gists{{/gist_id}}",
        "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{users}/subscriptions",
        "organizations_url": f"{users}/orgs",
        "repos_url": f"{users}/repos",
        "events_url": f"{users}/events{{/privacy}}",
        "received_events_url": f"{users}/received_events",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }


def history_item(gist: Gist, revision: Revision, base: str, login: str) -> dict[str, object]:
    return {
        "user": user(base, login),
        "version": revision.sha,
        "committed_at": iso(revision.committed_at),
        "change_status": {
            "total": revision.additions + revision.deletions,
            "additions": revision.additions,
            "deletions": revision.deletions,
        },
        "url": f"{base}/gists/{gist.gist_id}/{revision.sha}",
    }


def _file_json(gist: Gist, revision: Revision, filename: str, base: str) -> dict[str, object]:
    mime, language = file_type(filename)
    return {
        "filename": filename,
        "type": mime,
        "language": language,
        "raw_url": f"{base}/raw/{gist.gist_id}/{revision.sha}/{quote(filename)}",
        "size": len(revision.files[filename].encode("utf-8")),
    }


def _gist_fields(gist: Gist, revision: Revision, base: str, login: str) -> dict[str, object]:
    """What a gist shows both in GET /gists (base-gist) and in a gist's own answer, files aside."""
    gist_url = f"{base}/gists/{gist.gist_id}"
    return {
        "url": gist_url,
        "forks_url": f"{gist_url}/forks",
        "commits_url": f"{gist_url}/commits",
        "id": gist.gist_id,
        "node_id": gist.node_id,
        "git_pull_url": f"{base}/{gist.gist_id}.git",
        "git_push_url": f"{base}/{gist.gist_id}.git",
        "html_url": f"{base}/{login}/{gist.gist_id}",
        "files": {},
        "public": gist.public,
        "created_at": iso(gist.created_at),
        "updated_at": iso(revision.committed_at),
        "description": revision.description,
        "comments": 0,
        "comments_enabled": True,
        "user": None,
        "comments_url": f"{gist_url}/comments",
        "owner": user(base, login),
    }


def gist_json(gist: Gist, index: int, base: str, login: str) -> dict[str, object]:
    """The gist as it was at revision `index`: what GET gives for that sha."""
    revision = gist.revisions[index]
    files: dict[str, object] = {}
    for filename, content in list(revision.files.items())[:MAX_LISTED_FILES]:
        raw = content.encode("utf-8")
        truncated = len(raw) > TRUNCATE_BYTES
        shown = raw[:TRUNCATE_BYTES].decode("utf-8", errors="ignore") if truncated else content
        files[filename] = {
            **_file_json(gist, revision, filename, base),
            "truncated": truncated,
            "content": shown,
            "encoding": "utf-8",
        }
    return {
        **_gist_fields(gist, revision, base, login),
        "files": files,
        "forks": [],
        "history": [history_item(gist, rev, base, login) for rev in reversed(gist.revisions[: index + 1])],
        "truncated": len(revision.files) > MAX_LISTED_FILES,
    }


def listed_gist_json(gist: Gist, base: str, login: str) -> dict[str, object]:
    """The gist as GET /gists lists it (`base-gist`): files by name and size, no content, no history."""
    revision = gist.revisions[-1]
    names = list(revision.files)[:MAX_LISTED_FILES]
    return {
        **_gist_fields(gist, revision, base, login),
        "files": {name: _file_json(gist, revision, name, base) for name in names},
        "truncated": len(revision.files) > MAX_LISTED_FILES,
    }


def link_header(url: str, per_page: int, page: int, last_page: int, query: Mapping[str, str] | None = None) -> str:
    """GitHub's pagination Link header (empty when there is one page); `query` is kept in every link."""
    kept = f"&{urlencode(query)}" if query else ""

    def ref(number: int, rel: str) -> str:
        return f'<{url}?per_page={per_page}&page={number}{kept}>; rel="{rel}"'

    links = []
    if page > 1:
        links += [ref(min(page - 1, last_page), "prev")]
    if page < last_page:
        links += [ref(page + 1, "next"), ref(last_page, "last")]
    if page > 1:
        links += [ref(1, "first")]
    return ", ".join(links)
