"""A loopback stand-in for api.github.com's Gist API (REST API version 2022-11-28).

The local stack and the tests point the gist client at it with GIST_API_URL.
It keeps gists in memory and copies the parts of GitHub's behaviour the
project depends on: revisions with 40-hex shas, ETag/304 that costs no rate
limit, the 1 MiB per-file truncation with a raw_url, the 400 GitHub gives to
conditional headers on unsafe requests, the primary and secondary rate limits
with their headers, and GitHub's error bodies. Faults (502, slow answers, 429)
can be injected at runtime for chaos tests. Everything under /_admin/ is this
server's own control surface, not GitHub's API.

Run it alone with ``python -m cmdgate_local.gist_server --port 8765``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Self, TypeAlias
from urllib.parse import quote

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

API_VERSION = "2022-11-28"
# GitHub cuts `content` of a file above 1 MiB in API answers; raw_url has it all.
TRUNCATE_BYTES = 1024 * 1024
# GitHub lists at most 300 files of a gist in API answers.
MAX_LISTED_FILES = 300
PRIMARY_WINDOW_S = 3600.0
ANONYMOUS_LIMIT = 60

FaultMode = Literal["502", "timeout", "429", "none"]
_FAULT_MODES: dict[str, FaultMode] = {
    "502": "502",
    "timeout": "timeout",
    "429": "429",
    "none": "none",
}
JSON: TypeAlias = dict[str, object] | list[object] | str | int | float | bool | None

_DOCS = "https://docs.github.com/rest"
_DOC_CREATE = f"{_DOCS}/gists/gists#create-a-gist"
_DOC_GET = f"{_DOCS}/gists/gists#get-a-gist"
_DOC_UPDATE = f"{_DOCS}/gists/gists#update-a-gist"
_DOC_DELETE = f"{_DOCS}/gists/gists#delete-a-gist"
_DOC_COMMITS = f"{_DOCS}/gists/gists#list-gist-commits"
_DOC_REVISION = f"{_DOCS}/gists/gists#get-a-gist-revision"
_DOC_RATE = f"{_DOCS}/using-the-rest-api/rate-limits-for-the-rest-api"
_DOC_SECONDARY = f"{_DOC_RATE}#about-secondary-rate-limits"
_DOC_CONDITIONAL = f"{_DOCS}/using-the-rest-api/best-practices-for-using-the-rest-api"

_CONDITIONAL_HEADERS = (
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
)
_UNSAFE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# What GitHub's secondary limit calls content-creating requests on this API.
_CONTENT_CREATING = frozenset({"POST", "PATCH"})

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


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_type(filename: str) -> tuple[str, str]:
    dot = filename.rfind(".")
    if dot <= 0:
        return _PLAIN_TEXT
    return _FILE_TYPES.get(filename[dot:].lower(), _PLAIN_TEXT)


def _line_changes(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[int, int]:
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


def _wait_for_room(times: list[float], limit: int, window_s: float, now: float) -> float:
    """Seconds until a sliding window holding `times` (oldest first) has room for one more."""
    if len(times) < limit:
        return 0.0
    if limit <= 0:
        return window_s
    return times[-limit] + window_s - now


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2), as If-None-Match requires."""
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == bare for candidate in if_none_match.split(","))


@dataclass(frozen=True)
class _Revision:
    sha: str
    committed_at: float
    files: dict[str, str]
    description: str | None
    additions: int
    deletions: int


@dataclass
class _Gist:
    gist_id: str
    node_id: str
    public: bool
    created_at: float
    # Oldest first; the API lists them newest first.
    revisions: list[_Revision]


@dataclass
class _PrimaryBucket:
    used: int = 0
    reset_at: float = 0.0


@dataclass
class Fault:
    """A fault injected into API answers until `count` runs out (None: until cleared)."""

    mode: FaultMode = "none"
    count: int | None = None
    retry_after: int = 60
    delay_s: float = 30.0
    # Only requests with these methods are hit; None hits every API request.
    methods: frozenset[str] | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "count": self.count,
            "retry_after": self.retry_after,
            "delay_s": self.delay_s,
            "methods": sorted(self.methods) if self.methods is not None else None,
        }


@dataclass
class Limits:
    """Rate-limit budgets per token, as GitHub applies them per user."""

    primary_per_hour: int = 5000
    secondary_per_minute: int = 80
    secondary_per_hour: int = 500
    # GitHub documents both 403 and 429 for secondary limits.
    secondary_status: int = 403

    def as_json(self) -> dict[str, object]:
        return {
            "primary_per_hour": self.primary_per_hour,
            "secondary_per_minute": self.secondary_per_minute,
            "secondary_per_hour": self.secondary_per_hour,
            "secondary_status": self.secondary_status,
        }


@dataclass
class _Stats:
    requests_by_method: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    not_modified: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    faults_injected: int = 0
    write_log: list[dict[str, object]] = field(default_factory=list)


class _Reject(Exception):
    """Ends request handling early with a ready answer."""

    def __init__(self, response: Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


class _BadRequest(Exception):
    """A request body GitHub would refuse; carries the answer's status and body."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        super().__init__(str(body.get("message")))
        self.status = status
        self.body = body


def _invalid(doc: str, detail: str) -> _BadRequest:
    return _BadRequest(
        422,
        {
            "message": f"Invalid request.\n\n{detail}",
            "documentation_url": doc,
            "status": "422",
        },
    )


def _validation_failed(doc: str, code: str, field_name: str = "files") -> _BadRequest:
    return _BadRequest(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Gist", "code": code, "field": field_name}],
            "documentation_url": doc,
            "status": "422",
        },
    )


def _json_response(status: int, body: JSON, headers: Mapping[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = Response(data, status=status, content_type="application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _empty(status: int) -> Response:
    response = Response(status=status)
    # werkzeug adds text/plain by default; GitHub sends no type without a body.
    del response.headers["Content-Type"]
    return response


def _error(status: int, message: str, doc: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json_response(
        status,
        {"message": message, "documentation_url": doc, "status": str(status)},
        headers,
    )


class GistApp:
    """The WSGI application: an in-memory Gist API behind one lock."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        valid_tokens: Iterable[str] | None = None,
        login: str = "cmdgate-local",
        primary_limit_per_hour: int = 5000,
        secondary_limit_per_minute: int = 80,
        secondary_limit_per_hour: int = 500,
        secondary_limit_status: int = 403,
    ) -> None:
        self._clock = clock
        self._valid_tokens = frozenset(valid_tokens) if valid_tokens is not None else None
        self._login = login
        self.limits = Limits(
            primary_limit_per_hour,
            secondary_limit_per_minute,
            secondary_limit_per_hour,
            secondary_limit_status,
        )
        self._check_secondary_status(secondary_limit_status)
        # One lock for all state, so a request sees and changes it atomically.
        self._lock = threading.Lock()
        # Wakes requests sleeping in a "timeout" fault when the server stops.
        self._closing = threading.Event()
        self._gists: dict[str, _Gist] = {}
        self._primary: dict[str | None, _PrimaryBucket] = {}
        self._writes: dict[str, deque[float]] = {}
        self._fault = Fault()
        self._stats = _Stats()
        self._sequence = 0
        self._url_map = Map(
            [
                Rule("/gists", methods=["POST"], endpoint="create"),
                Rule("/gists/<gist_id>", methods=["GET"], endpoint="get"),
                Rule("/gists/<gist_id>", methods=["PATCH"], endpoint="update"),
                Rule("/gists/<gist_id>", methods=["DELETE"], endpoint="delete"),
                Rule("/gists/<gist_id>/commits", methods=["GET"], endpoint="commits"),
                Rule("/gists/<gist_id>/<sha>", methods=["GET"], endpoint="revision"),
                Rule(
                    "/raw/<gist_id>/<sha>/<path:filename>",
                    methods=["GET"],
                    endpoint="raw",
                ),
                Rule("/_admin/stats", methods=["GET"], endpoint="admin_stats"),
                Rule("/_admin/reset", methods=["POST"], endpoint="admin_reset"),
                Rule("/_admin/faults", methods=["GET", "POST"], endpoint="admin_faults"),
                Rule("/_admin/limits", methods=["GET", "POST"], endpoint="admin_limits"),
            ],
            strict_slashes=False,
        )

    # ----------------------------------------------------------------- Python control

    def set_fault(
        self,
        mode: FaultMode,
        count: int | None = None,
        retry_after: int = 60,
        delay_s: float = 30.0,
        methods: Iterable[str] | None = None,
    ) -> Fault:
        """Make the next `count` API requests (all while None) fail as `mode`."""
        if mode not in _FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0 or None")
        fault = Fault(
            mode=mode,
            count=count,
            retry_after=retry_after,
            delay_s=delay_s,
            methods=frozenset(m.upper() for m in methods) if methods is not None else None,
        )
        with self._lock:
            self._fault = fault
        return fault

    def clear_fault(self) -> None:
        """Stop injecting faults."""
        self.set_fault("none")

    def set_limits(
        self,
        *,
        primary_per_hour: int | None = None,
        secondary_per_minute: int | None = None,
        secondary_per_hour: int | None = None,
        secondary_status: int | None = None,
    ) -> Limits:
        """Change the rate-limit budgets; counts already spent are kept."""
        if secondary_status is not None:
            self._check_secondary_status(secondary_status)
        with self._lock:
            if primary_per_hour is not None:
                self.limits.primary_per_hour = primary_per_hour
            if secondary_per_minute is not None:
                self.limits.secondary_per_minute = secondary_per_minute
            if secondary_per_hour is not None:
                self.limits.secondary_per_hour = secondary_per_hour
            if secondary_status is not None:
                self.limits.secondary_status = secondary_status
            return dataclasses.replace(self.limits)

    def stats(self) -> dict[str, object]:
        """Counters and the write log, as GET /_admin/stats gives them."""
        with self._lock:
            return self._stats_json()

    def write_log(self) -> list[dict[str, object]]:
        """Every accepted POST/PATCH: ts (clock seconds), method, gist_id, version."""
        with self._lock:
            return [dict(entry) for entry in self._stats.write_log]

    def reset(self) -> None:
        """Forget gists, counters, rate-limit windows and faults; keep the limits."""
        with self._lock:
            self._gists.clear()
            self._primary.clear()
            self._writes.clear()
            self._fault = Fault()
            self._stats = _Stats()

    def close(self) -> None:
        """Release requests sleeping in a timeout fault, so the server can stop."""
        self._closing.set()

    @staticmethod
    def _check_secondary_status(status: int) -> None:
        if status not in (403, 429):
            raise ValueError("secondary_status must be 403 or 429")

    # ----------------------------------------------------------------------- WSGI

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except (NotFound, MethodNotAllowed):
            endpoint, args = "unknown", {}
        except HTTPException as exc:  # any other routing outcome: answer as GitHub would
            return _error(exc.code or 404, "Not Found", _DOCS)
        name = str(endpoint)
        if name.startswith("admin_"):
            return self._admin(name, request)
        if name == "raw":
            return self._raw(args["gist_id"], args["sha"], args["filename"])
        return self._api(name, args, request)

    # ------------------------------------------------------------------------ API

    def _api(self, endpoint: str, args: Mapping[str, str], request: Request) -> Response:
        # Read the body before taking the lock, so a slow upload holds up nobody.
        request.get_data(cache=True)
        delay = self._take_fault_delay(request)
        if delay:
            # Outside the lock: a slow answer must not stall other requests.
            self._closing.wait(delay)
        with self._lock:
            self._stats.requests_by_method[request.method] += 1
            fault = self._take_fault(request)
            if fault is not None:
                return fault
            token = self._token(request)
            try:
                if token is None:
                    raise _Reject(self._unauthenticated(request), "auth")
                bucket = self._bucket(token)
                if bucket.used >= self.limits.primary_per_hour:
                    raise _Reject(
                        _error(403, "API rate limit exceeded for user ID 1.", _DOC_RATE),
                        "primary_rate_limit",
                    )
                response = self._route(endpoint, args, request, token)
            except _Reject as reject:
                self._stats.rejected[reject.reason] += 1
                response = reject.response
            if token is not None:
                if response.status_code == 304:
                    # GitHub does not charge a 304 against the primary limit.
                    self._stats.not_modified += 1
                elif self._bucket(token).used < self.limits.primary_per_hour:
                    self._bucket(token).used += 1
                self._rate_headers(response, token)
            self._common_headers(response, request)
            return response

    def _route(self, endpoint: str, args: Mapping[str, str], request: Request, token: str) -> Response:
        if request.method in _UNSAFE_METHODS:
            sent = [h for h in _CONDITIONAL_HEADERS if h in request.headers]
            if sent:
                raise _Reject(
                    _error(
                        400,
                        "Conditional request headers are not allowed in unsafe requests"
                        " unless supported by the endpoint",
                        _DOC_CONDITIONAL,
                    ),
                    "conditional_on_unsafe",
                )
        base = request.host_url.rstrip("/")
        if endpoint == "create":
            return self._create(request, base, token)
        if endpoint == "unknown":
            raise _Reject(_error(404, "Not Found", _DOCS), "not_found")
        gist = self._gists.get(args["gist_id"])
        if gist is None:
            doc = {
                "get": _DOC_GET,
                "update": _DOC_UPDATE,
                "delete": _DOC_DELETE,
                "commits": _DOC_COMMITS,
            }
            raise _Reject(_error(404, "Not Found", doc.get(endpoint, _DOC_REVISION)), "not_found")
        if endpoint == "get":
            return self._conditional_get(request, self._render(gist, len(gist.revisions) - 1, base))
        if endpoint == "update":
            return self._update(gist, request, base, token)
        if endpoint == "delete":
            del self._gists[gist.gist_id]
            return _empty(204)
        if endpoint == "commits":
            return self._commits(gist, request, base)
        index = next((i for i, rev in enumerate(gist.revisions) if rev.sha == args["sha"]), None)
        if index is None:
            raise _Reject(_error(404, "Not Found", _DOC_REVISION), "not_found")
        return self._conditional_get(request, self._render(gist, index, base))

    def _create(self, request: Request, base: str, token: str) -> Response:
        body = self._json_body(request)
        try:
            if not isinstance(body, dict):
                raise _invalid(_DOC_CREATE, "Invalid input: the body is not an object.")
            if "files" not in body:
                raise _invalid(_DOC_CREATE, '"files" wasn\'t supplied.')
            files = self._parse_create_files(body["files"])
            description = self._parse_description(body, _DOC_CREATE)
            public = self._parse_public(body.get("public", False))
        except _BadRequest as exc:
            raise _Reject(_json_response(exc.status, exc.body), "validation") from None
        self._charge_write(token, request.method)
        now = self._clock()
        gist_id = uuid.uuid4().hex
        gist = _Gist(
            gist_id=gist_id,
            node_id="G_kwDO" + base64.b64encode(gist_id.encode()).decode().rstrip("="),
            public=public,
            created_at=now,
            revisions=[],
        )
        self._commit(gist, files, description, now)
        self._gists[gist_id] = gist
        self._log_write(request.method, gist, now)
        body_json = self._render(gist, 0, base)
        return _json_response(201, body_json, {"Location": f"{base}/gists/{gist_id}"})

    def _update(self, gist: _Gist, request: Request, base: str, token: str) -> Response:
        body = self._json_body(request)
        current = gist.revisions[-1]
        try:
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise _invalid(_DOC_UPDATE, "Invalid input: the body is not an object.")
            description = self._parse_description(body, _DOC_UPDATE) if "description" in body else current.description
            files = self._apply_file_changes(current.files, body.get("files", {}))
        except _BadRequest as exc:
            raise _Reject(_json_response(exc.status, exc.body), "validation") from None
        self._charge_write(token, request.method)
        now = self._clock()
        self._commit(gist, files, description, now)
        self._log_write(request.method, gist, now)
        return _json_response(200, self._render(gist, len(gist.revisions) - 1, base))

    def _commits(self, gist: _Gist, request: Request, base: str) -> Response:
        per_page = min(max(self._int_arg(request, "per_page", 30), 1), 100)
        page = max(self._int_arg(request, "page", 1), 1)
        newest_first = list(reversed(gist.revisions))
        last_page = max(math.ceil(len(newest_first) / per_page), 1)
        chunk = newest_first[(page - 1) * per_page : page * per_page]
        items: list[object] = [self._history_item(gist, rev, base) for rev in chunk]
        response = self._conditional_get(request, items)
        link = self._link_header(f"{base}/gists/{gist.gist_id}/commits", per_page, page, last_page)
        if link:
            response.headers["Link"] = link
        return response

    @staticmethod
    def _link_header(url: str, per_page: int, page: int, last_page: int) -> str:
        def ref(number: int, rel: str) -> str:
            return f'<{url}?per_page={per_page}&page={number}>; rel="{rel}"'

        links = []
        if page > 1:
            links += [ref(min(page - 1, last_page), "prev")]
        if page < last_page:
            links += [ref(page + 1, "next"), ref(last_page, "last")]
        if page > 1:
            links += [ref(1, "first")]
        return ", ".join(links)

    def _raw(self, gist_id: str, sha: str, filename: str) -> Response:
        # Served like gist.githubusercontent.com: no auth, no rate limit, no faults.
        with self._lock:
            self._stats.requests_by_method["GET"] += 1
            gist = self._gists.get(gist_id)
            revision = next((r for r in gist.revisions if r.sha == sha), None) if gist else None
            if revision is None or filename not in revision.files:
                return Response(
                    "404: Not Found",
                    status=404,
                    content_type="text/plain; charset=utf-8",
                )
            return Response(
                revision.files[filename],
                status=200,
                content_type="text/plain; charset=utf-8",
            )

    # --------------------------------------------------------------- body parsing

    def _json_body(self, request: Request) -> object:
        data = request.get_data(cache=True)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise _Reject(
                _json_response(
                    400,
                    {
                        "message": "Problems parsing JSON",
                        "documentation_url": _DOCS,
                        "status": "400",
                    },
                ),
                "validation",
            ) from None

    @staticmethod
    def _parse_description(body: Mapping[str, object], doc: str) -> str | None:
        value = body.get("description")
        if value is not None and not isinstance(value, str):
            raise _invalid(
                doc,
                f"For 'properties/description', {json.dumps(value)} is not a string.",
            )
        return value

    @staticmethod
    def _parse_public(value: object) -> bool:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise _invalid(
            _DOC_CREATE,
            f"For 'properties/public', {json.dumps(value)} is not a boolean.",
        )

    @staticmethod
    def _check_filename(name: str, doc: str) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise _validation_failed(doc, "invalid")

    def _parse_create_files(self, value: object) -> dict[str, str]:
        if not isinstance(value, dict):
            raise _invalid(
                _DOC_CREATE,
                f"For 'properties/files', {json.dumps(value)} is not an object.",
            )
        if not value:
            raise _validation_failed(_DOC_CREATE, "missing_field")
        files: dict[str, str] = {}
        for name, spec in value.items():
            if not isinstance(spec, dict) or "content" not in spec:
                raise _invalid(
                    _DOC_CREATE,
                    f"For 'properties/files/{name}', \"content\" wasn't supplied.",
                )
            content = spec["content"]
            if not isinstance(content, str):
                raise _invalid(
                    _DOC_CREATE,
                    f"For 'properties/content', {json.dumps(content)} is not a string.",
                )
            self._check_filename(name, _DOC_CREATE)
            if not content:
                raise _validation_failed(_DOC_CREATE, "missing_field")
            files[name] = content
        return files

    def _apply_file_changes(self, current: Mapping[str, str], value: object) -> dict[str, str]:
        if not isinstance(value, dict):
            raise _invalid(
                _DOC_UPDATE,
                f"For 'properties/files', {json.dumps(value)} is not an object.",
            )
        files = dict(current)
        for name, spec in value.items():
            if spec is None or (isinstance(spec, dict) and "content" not in spec and spec.get("filename") is None):
                # GitHub deletes a file given as null or without content and filename.
                files.pop(name, None)
                continue
            if not isinstance(spec, dict):
                raise _invalid(
                    _DOC_UPDATE,
                    f"For 'properties/files/{name}', {json.dumps(spec)} is not an object.",
                )
            content = spec.get("content", files.get(name))
            new_name = spec.get("filename") or name
            if not isinstance(content, str):
                if name not in files:
                    raise _validation_failed(_DOC_UPDATE, "missing_field")
                raise _invalid(
                    _DOC_UPDATE,
                    f"For 'properties/content', {json.dumps(content)} is not a string.",
                )
            if not isinstance(new_name, str):
                raise _invalid(
                    _DOC_UPDATE,
                    f"For 'properties/filename', {json.dumps(new_name)} is not a string.",
                )
            self._check_filename(new_name, _DOC_UPDATE)
            if not content:
                raise _validation_failed(_DOC_UPDATE, "missing_field")
            if new_name != name and new_name in files:
                raise _validation_failed(_DOC_UPDATE, "already_exists")
            files.pop(name, None)
            files[new_name] = content
        if not files:
            raise _validation_failed(_DOC_UPDATE, "missing_field")
        return files

    @staticmethod
    def _int_arg(request: Request, name: str, default: int) -> int:
        try:
            return int(request.args.get(name, default))
        except ValueError:
            return default

    # ------------------------------------------------------------------ rendering

    def _user(self, base: str) -> dict[str, object]:
        login = self._login
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

    def _history_item(self, gist: _Gist, revision: _Revision, base: str) -> dict[str, object]:
        return {
            "user": self._user(base),
            "version": revision.sha,
            "committed_at": _iso(revision.committed_at),
            "change_status": {
                "total": revision.additions + revision.deletions,
                "additions": revision.additions,
                "deletions": revision.deletions,
            },
            "url": f"{base}/gists/{gist.gist_id}/{revision.sha}",
        }

    def _render(self, gist: _Gist, index: int, base: str) -> dict[str, object]:
        """The gist as it was at revision `index`: what GET gives for that sha."""
        revision = gist.revisions[index]
        files: dict[str, object] = {}
        for filename, content in list(revision.files.items())[:MAX_LISTED_FILES]:
            raw = content.encode("utf-8")
            mime, language = _file_type(filename)
            truncated = len(raw) > TRUNCATE_BYTES
            shown = raw[:TRUNCATE_BYTES].decode("utf-8", errors="ignore") if truncated else content
            files[filename] = {
                "filename": filename,
                "type": mime,
                "language": language,
                "raw_url": f"{base}/raw/{gist.gist_id}/{revision.sha}/{quote(filename)}",
                "size": len(raw),
                "truncated": truncated,
                "content": shown,
                "encoding": "utf-8",
            }
        gist_url = f"{base}/gists/{gist.gist_id}"
        return {
            "url": gist_url,
            "forks_url": f"{gist_url}/forks",
            "commits_url": f"{gist_url}/commits",
            "id": gist.gist_id,
            "node_id": gist.node_id,
            "git_pull_url": f"{base}/{gist.gist_id}.git",
            "git_push_url": f"{base}/{gist.gist_id}.git",
            "html_url": f"{base}/{self._login}/{gist.gist_id}",
            "files": files,
            "public": gist.public,
            "created_at": _iso(gist.created_at),
            "updated_at": _iso(revision.committed_at),
            "description": revision.description,
            "comments": 0,
            "comments_enabled": True,
            "user": None,
            "comments_url": f"{gist_url}/comments",
            "owner": self._user(base),
            "forks": [],
            "history": [self._history_item(gist, rev, base) for rev in reversed(gist.revisions[: index + 1])],
            "truncated": len(revision.files) > MAX_LISTED_FILES,
        }

    def _conditional_get(self, request: Request, body: JSON) -> Response:
        response = _json_response(200, body)
        etag = _etag(response.get_data())
        response.headers["ETag"] = etag
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and _etag_matches(if_none_match, etag):
            not_modified = _empty(304)
            not_modified.headers["ETag"] = etag
            return not_modified
        return response

    # -------------------------------------------------------------- state changes

    def _commit(self, gist: _Gist, files: dict[str, str], description: str | None, now: float) -> None:
        previous = gist.revisions[-1].files if gist.revisions else {}
        additions, deletions = _line_changes(previous, files)
        self._sequence += 1
        parent = gist.revisions[-1].sha if gist.revisions else ""
        seed = json.dumps([gist.gist_id, parent, self._sequence, now, files, description])
        sha = hashlib.sha1(seed.encode("utf-8"), usedforsecurity=False).hexdigest()
        gist.revisions.append(_Revision(sha, now, dict(files), description, additions, deletions))

    def _log_write(self, method: str, gist: _Gist, now: float) -> None:
        self._stats.writes += 1
        self._stats.write_log.append(
            {
                "ts": now,
                "method": method,
                "gist_id": gist.gist_id,
                "version": gist.revisions[-1].sha,
            }
        )

    # ----------------------------------------------------------------- rate limits

    def _bucket(self, token: str | None) -> _PrimaryBucket:
        now = self._clock()
        bucket = self._primary.setdefault(token, _PrimaryBucket(reset_at=now + PRIMARY_WINDOW_S))
        if now >= bucket.reset_at:
            # GitHub's window is fixed: it starts with the first request after a reset.
            bucket.used = 0
            bucket.reset_at = now + PRIMARY_WINDOW_S
        return bucket

    def _rate_headers(self, response: Response, token: str | None) -> None:
        limit = self.limits.primary_per_hour if token is not None else ANONYMOUS_LIMIT
        bucket = self._bucket(token)
        response.headers["x-ratelimit-limit"] = str(limit)
        response.headers["x-ratelimit-remaining"] = str(max(limit - bucket.used, 0))
        response.headers["x-ratelimit-used"] = str(bucket.used)
        response.headers["x-ratelimit-reset"] = str(math.ceil(bucket.reset_at))
        response.headers["x-ratelimit-resource"] = "core"

    def _charge_write(self, token: str, method: str) -> None:
        """Enforce the secondary limit on content-creating requests, then count this one."""
        if method not in _CONTENT_CREATING:
            return
        now = self._clock()
        times = self._writes.setdefault(token, deque())
        while times and times[0] <= now - 3600.0:
            times.popleft()
        in_minute = [t for t in times if t > now - 60.0]
        waits = [
            _wait_for_room(in_minute, self.limits.secondary_per_minute, 60.0, now),
            _wait_for_room(list(times), self.limits.secondary_per_hour, 3600.0, now),
        ]
        if max(waits) > 0:
            retry_after = max(math.ceil(max(waits)), 1)
            raise _Reject(
                _error(
                    self.limits.secondary_status,
                    "You have exceeded a secondary rate limit and have been temporarily blocked"
                    " from content creation. Please retry your request again later.",
                    _DOC_SECONDARY,
                    {"Retry-After": str(retry_after)},
                ),
                "secondary_rate_limit",
            )
        times.append(now)

    # ---------------------------------------------------------------- auth, faults

    def _token(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            return None
        if self._valid_tokens is not None and token not in self._valid_tokens:
            return None
        return token

    def _unauthenticated(self, request: Request) -> Response:
        # GitHub says "Bad credentials" for a token it refuses and
        # "Requires authentication" when none was sent.
        message = "Bad credentials" if request.headers.get("Authorization") else "Requires authentication"
        response = _error(401, message, _DOCS)
        bucket = self._bucket(None)
        bucket.used = min(bucket.used + 1, ANONYMOUS_LIMIT)
        self._rate_headers(response, None)
        return response

    def _fault_applies(self, request: Request) -> bool:
        fault = self._fault
        if fault.mode == "none" or fault.count == 0:
            return False
        return fault.methods is None or request.method in fault.methods

    def _consume_fault(self) -> None:
        if self._fault.count is not None:
            self._fault.count -= 1
        self._stats.faults_injected += 1

    def _take_fault_delay(self, request: Request) -> float:
        with self._lock:
            if self._fault.mode != "timeout" or not self._fault_applies(request):
                return 0.0
            self._consume_fault()
            return self._fault.delay_s

    def _take_fault(self, request: Request) -> Response | None:
        if self._fault.mode not in ("502", "429") or not self._fault_applies(request):
            return None
        self._consume_fault()
        if self._fault.mode == "502":
            return Response(
                "<html><head><title>502 Bad Gateway</title></head><body>\n"
                "<h1>502 Bad Gateway</h1>\n"
                "<p>The server returned an invalid or incomplete response.</p>\n"
                "</body></html>\n",
                status=502,
                content_type="text/html; charset=utf-8",
            )
        response = _error(
            429,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            _DOC_SECONDARY,
            {"Retry-After": str(self._fault.retry_after)},
        )
        token = self._token(request)
        if token is not None:
            self._rate_headers(response, token)
        self._common_headers(response, request)
        return response

    @staticmethod
    def _common_headers(response: Response, request: Request) -> None:
        if "X-GitHub-Api-Version" in request.headers:
            response.headers["X-GitHub-Api-Version-Selected"] = API_VERSION
        response.headers["X-GitHub-Media-Type"] = "github.v3; format=json"
        response.headers["X-GitHub-Request-Id"] = uuid.uuid4().hex[:20].upper()
        response.headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
        if request.method == "GET":
            response.headers["Cache-Control"] = "private, max-age=60, s-maxage=60"

    # ---------------------------------------------------------------------- admin

    def _stats_json(self) -> dict[str, object]:
        stats = self._stats
        return {
            "requests_by_method": dict(stats.requests_by_method),
            "requests_total": sum(stats.requests_by_method.values()),
            "writes": stats.writes,
            "not_modified": stats.not_modified,
            "rejected": dict(stats.rejected),
            "rejected_total": sum(stats.rejected.values()),
            "faults_injected": stats.faults_injected,
            "gists": len(self._gists),
            "write_log": [dict(entry) for entry in stats.write_log],
        }

    def _admin(self, endpoint: str, request: Request) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}") if request.method == "POST" else {}
        except ValueError:
            return _json_response(400, {"error": "body is not JSON"})
        if not isinstance(body, dict):
            return _json_response(400, {"error": "body must be a JSON object"})
        try:
            if endpoint == "admin_stats":
                return _json_response(200, self.stats())
            if endpoint == "admin_reset":
                self.reset()
                return _json_response(200, {"reset": True})
            if endpoint == "admin_faults":
                if request.method == "POST":
                    methods = body.get("methods")
                    mode = _FAULT_MODES.get(str(body.get("mode", "none")))
                    if mode is None:
                        raise ValueError(f"mode must be one of {sorted(_FAULT_MODES)}")
                    self.set_fault(
                        mode=mode,
                        count=None if body.get("count") is None else int(body["count"]),
                        retry_after=int(body.get("retry_after", 60)),
                        delay_s=float(body.get("delay_s", 30.0)),
                        methods=[str(m) for m in methods] if isinstance(methods, list) else None,
                    )
                with self._lock:
                    return _json_response(200, self._fault.as_json())
            limits = self.set_limits(**{k: int(v) for k, v in body.items()}) if body else None
            return _json_response(200, (limits or self.limits).as_json())
        except (TypeError, ValueError) as exc:
            return _json_response(400, {"error": str(exc)})


class _QuietRequestHandler(WSGIRequestHandler):
    """Keeps test output clean: werkzeug otherwise logs every request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class GistServer:
    """Runs a GistApp on 127.0.0.1 in a background thread (port 0: pick a free one)."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        app: GistApp | None = None,
        clock: Callable[[], float] = time.time,
        valid_tokens: Iterable[str] | None = None,
        primary_limit_per_hour: int = 5000,
        secondary_limit_per_minute: int = 80,
        secondary_limit_per_hour: int = 500,
        secondary_limit_status: int = 403,
        log_requests: bool = False,
    ) -> None:
        self.app = app or GistApp(
            clock=clock,
            valid_tokens=valid_tokens,
            primary_limit_per_hour=primary_limit_per_hour,
            secondary_limit_per_minute=secondary_limit_per_minute,
            secondary_limit_per_hour=secondary_limit_per_hour,
            secondary_limit_status=secondary_limit_status,
        )
        self._server: BaseWSGIServer = make_server(
            host,
            port,
            self.app,
            threaded=True,
            request_handler=None if log_requests else _QuietRequestHandler,
        )
        # Keep-alive connections hold handler threads open; stop() must not wait for them.
        self._server.block_on_close = False  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._host = host

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """Base URL to use as GIST_API_URL, e.g. http://127.0.0.1:54321."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> Self:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                # A short poll keeps stop() quick; tests start and stop many servers.
                kwargs={"poll_interval": 0.05},
                name=f"gist-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.app.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self.app.close()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Loopback stand-in for GitHub's Gist API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        help="accept only these tokens (repeatable)",
    )
    parser.add_argument("--primary-limit", type=int, default=5000, help="requests per hour per token")
    parser.add_argument(
        "--secondary-per-minute",
        type=int,
        default=80,
        help="POST/PATCH per minute per token",
    )
    parser.add_argument(
        "--secondary-per-hour",
        type=int,
        default=500,
        help="POST/PATCH per hour per token",
    )
    parser.add_argument("--secondary-status", type=int, choices=(403, 429), default=403)
    parser.add_argument("--log-requests", action="store_true")
    args = parser.parse_args(argv)
    server = GistServer(
        args.port,
        host=args.host,
        valid_tokens=args.tokens,
        primary_limit_per_hour=args.primary_limit,
        secondary_limit_per_minute=args.secondary_per_minute,
        secondary_limit_per_hour=args.secondary_per_hour,
        secondary_limit_status=args.secondary_status,
        log_requests=args.log_requests,
    )
    print(f"gist server ready on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
