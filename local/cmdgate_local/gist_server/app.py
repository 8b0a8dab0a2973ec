"""The WSGI application: routes GitHub's gist endpoints over an in-memory store behind one lock."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from cmdgate_local.gist_server import dispatches, render, validation
from cmdgate_local.gist_server.admin import admin_response
from cmdgate_local.gist_server.faults import FAULT_MODES, Fault, FaultInjector, FaultMode
from cmdgate_local.gist_server.limits import Limits, RateLimiter, check_secondary_status
from cmdgate_local.gist_server.responses import (
    DOC_COMMITS,
    DOC_DELETE,
    DOC_GET,
    DOC_REVISION,
    DOC_UPDATE,
    DOCS,
    Reject,
    common_headers,
    conditional_get,
    empty,
    error,
    json_response,
)
from cmdgate_local.gist_server.revisions import Gist, owner_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_NOT_FOUND_DOCS = {
    "get": DOC_GET,
    "update": DOC_UPDATE,
    "delete": DOC_DELETE,
    "commits": DOC_COMMITS,
}


@dataclass
class _Stats:
    requests_by_method: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    not_modified: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    write_log: list[dict[str, object]] = field(default_factory=list)
    dispatch_log: list[dispatches.Dispatch] = field(default_factory=list)


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
        check_secondary_status(secondary_limit_status)
        self.limits = Limits(
            primary_limit_per_hour,
            secondary_limit_per_minute,
            secondary_limit_per_hour,
            secondary_limit_status,
        )
        # One lock for all state, so a request sees and changes it atomically.
        self._lock = threading.Lock()
        # Wakes requests sleeping in a "timeout" fault when the server stops.
        self._closing = threading.Event()
        self._gists: dict[str, Gist] = {}
        self._rate = RateLimiter(self.limits, clock)
        self._faults = FaultInjector()
        self._stats = _Stats()
        self._sequence = 0
        self._url_map = Map(
            [
                Rule("/gists", methods=["GET"], endpoint="list"),
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
                Rule(
                    "/repos/<owner>/<repo>/actions/workflows/<workflow_id>/dispatches",
                    methods=["POST"],
                    endpoint="workflow_dispatch",
                ),
                Rule("/repos/<owner>/<repo>/dispatches", methods=["POST"], endpoint="repository_dispatch"),
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
        path_prefix: str | None = None,
    ) -> Fault:
        """Make the next `count` API requests (all while None) fail as `mode` (see `faults`);
        `methods` / `path_prefix` narrow which requests are hit (e.g. "/repos/": dispatches only).

        "lost" and "lost_timeout" apply the request first, then spoil its answer.
        """
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0 or None")
        fault = Fault(
            mode=mode,
            count=count,
            retry_after=retry_after,
            delay_s=delay_s,
            methods=frozenset(m.upper() for m in methods) if methods is not None else None,
            path_prefix=path_prefix,
        )
        with self._lock:
            self._faults.fault = fault
        return fault

    def clear_fault(self) -> None:
        """Stop injecting faults."""
        self.set_fault("none")

    def fault(self) -> Fault:
        """A copy of the fault being injected (mode "none" when there is none)."""
        with self._lock:
            return dataclasses.replace(self._faults.fault)

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
            check_secondary_status(secondary_status)
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
            stats = self._stats
            return {
                "requests_by_method": dict(stats.requests_by_method),
                "requests_total": sum(stats.requests_by_method.values()),
                "writes": stats.writes,
                "not_modified": stats.not_modified,
                "rejected": dict(stats.rejected),
                "rejected_total": sum(stats.rejected.values()),
                "faults_injected": self._faults.injected,
                "gists": len(self._gists),
                "write_log": [dict(entry) for entry in stats.write_log],
                "dispatches": [dispatch.as_json() for dispatch in stats.dispatch_log],
            }

    def write_log(self) -> list[dict[str, object]]:
        """Every accepted POST/PATCH: ts (clock seconds), method, gist_id, version."""
        with self._lock:
            return [dict(entry) for entry in self._stats.write_log]

    def dispatch_log(self) -> list[dict[str, object]]:
        """Every accepted workflow and repository dispatch, oldest first."""
        with self._lock:
            return [dispatch.as_json() for dispatch in self._stats.dispatch_log]

    def reset(self) -> None:
        """Forget gists, counters, rate-limit windows and faults; keep the limits."""
        with self._lock:
            self._gists.clear()
            self._rate.reset()
            self._faults.reset()
            self._stats = _Stats()

    def close(self) -> None:
        """Release requests sleeping in a timeout fault, so the server can stop."""
        self._closing.set()

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
            return error(exc.code or 404, "Not Found", DOCS)
        name = str(endpoint)
        if name.startswith("admin_"):
            return admin_response(self, name, request)
        if name == "raw":
            return self._raw(args["gist_id"], args["sha"], args["filename"])
        return self._api(name, args, request)

    # ------------------------------------------------------------------------ API

    def _api(self, endpoint: str, args: Mapping[str, str], request: Request) -> Response:
        # Read the body before taking the lock, so a slow upload holds up nobody.
        request.get_data(cache=True)
        with self._lock:
            delay = self._faults.take_delay(request)
        if delay:
            # Outside the lock: a slow answer must not stall other requests.
            self._closing.wait(delay)
        with self._lock:
            self._stats.requests_by_method[request.method] += 1
            fault = self._faults.take_response(request)
            if fault is not None:
                if fault.status_code in (429, 403):
                    token = self._token(request)
                    if token is not None:
                        self._rate.headers(fault, token)
                    common_headers(fault, request)
                return fault
            token = self._token(request)
            try:
                if token is None:
                    raise Reject(self._unauthenticated(request), "auth")
                self._rate.refuse_if_exhausted(token)
                response = self._route(endpoint, args, request, token)
            except Reject as reject:
                self._stats.rejected[reject.reason] += 1
                response = reject.response
            if token is not None:
                if response.status_code == 304:
                    # GitHub does not charge a 304 against the primary limit.
                    self._stats.not_modified += 1
                else:
                    self._rate.charge(token)
                self._rate.headers(response, token)
            common_headers(response, request)
            # A "lost" fault: the request was handled (a write has landed); its answer goes astray.
            lost, stall = self._faults.take_lost(request)
        if stall:
            # Outside the lock, like the "timeout" fault: the client gives up before this answer comes.
            self._closing.wait(stall)
        return lost if lost is not None else response

    def _route(self, endpoint: str, args: Mapping[str, str], request: Request, token: str) -> Response:
        validation.refuse_conditional_on_unsafe(request)
        base = request.host_url.rstrip("/")
        if endpoint == "create":
            return self._create(request, base, token)
        if endpoint == "list":
            return self._list(request, base, token)
        if endpoint == "unknown":
            raise Reject(error(404, "Not Found", DOCS), "not_found")
        if endpoint in ("workflow_dispatch", "repository_dispatch"):
            return self._dispatch_event(endpoint, args, request, token)
        gist = self._gists.get(args["gist_id"])
        if gist is None:
            raise Reject(error(404, "Not Found", _NOT_FOUND_DOCS.get(endpoint, DOC_REVISION)), "not_found")
        if endpoint == "get":
            return conditional_get(request, self._render(gist, len(gist.revisions) - 1, base))
        if endpoint == "update":
            return self._update(gist, request, base, token)
        if endpoint == "delete":
            del self._gists[gist.gist_id]
            return empty(204)
        if endpoint == "commits":
            return self._commits(gist, request, base)
        index = gist.find(args["sha"])
        if index is None:
            raise Reject(error(404, "Not Found", DOC_REVISION), "not_found")
        return conditional_get(request, self._render(gist, index, base))

    def _create(self, request: Request, base: str, token: str) -> Response:
        body = validation.json_body(request)
        try:
            files, description, public = validation.parse_create(body)
        except validation.BadRequest as exc:
            raise Reject(json_response(exc.status, exc.body), "validation") from None
        self._rate.charge_write(token, request.method)
        now = self._clock()
        gist = Gist.new(uuid.uuid4().hex, public=public, now=now, owner=owner_of(token))
        self._commit(gist, files, description, now, request.method)
        self._gists[gist.gist_id] = gist
        return json_response(201, self._render(gist, 0, base), {"Location": f"{base}/gists/{gist.gist_id}"})

    def _update(self, gist: Gist, request: Request, base: str, token: str) -> Response:
        body = validation.json_body(request)
        current = gist.revisions[-1]
        try:
            files, description = validation.parse_update(body, current.files, current.description)
        except validation.BadRequest as exc:
            raise Reject(json_response(exc.status, exc.body), "validation") from None
        self._rate.charge_write(token, request.method)
        now = self._clock()
        self._commit(gist, files, description, now, request.method)
        return json_response(200, self._render(gist, len(gist.revisions) - 1, base))

    def _dispatch_event(self, endpoint: str, args: Mapping[str, str], request: Request, token: str) -> Response:
        """A workflow or repository dispatch: validated, charged as content creation, recorded; 204."""
        body = validation.json_body(request)
        now = self._clock()
        try:
            if endpoint == "workflow_dispatch":
                dispatch = dispatches.parse_workflow_dispatch(
                    body, args["owner"], args["repo"], args["workflow_id"], now
                )
            else:
                dispatch = dispatches.parse_repository_dispatch(body, args["owner"], args["repo"], now)
        except validation.BadRequest as exc:
            raise Reject(json_response(exc.status, exc.body), "validation") from None
        self._rate.charge_write(token, request.method)
        self._stats.dispatch_log.append(dispatch)
        return empty(204)

    def _list(self, request: Request, base: str, token: str) -> Response:
        """GET /gists: the token's own gists, most recently updated first, paginated."""
        per_page = min(max(validation.int_arg(request, "per_page", 30), 1), 100)
        page = max(validation.int_arg(request, "page", 1), 1)
        since = validation.since_arg(request)
        owner = owner_of(token)
        mine = [
            gist
            for gist in self._gists.values()
            if gist.owner == owner and (since is None or math.floor(gist.revisions[-1].committed_at) >= since)
        ]
        mine.sort(key=lambda gist: (gist.revisions[-1].committed_at, gist.revisions[-1].sequence), reverse=True)
        last_page = max(math.ceil(len(mine) / per_page), 1)
        chunk = mine[(page - 1) * per_page : page * per_page]
        items: list[object] = [render.listed_gist_json(gist, base, self._login) for gist in chunk]
        response = conditional_get(request, items)
        query = {"since": render.iso(since)} if since is not None else None
        link = render.link_header(f"{base}/gists", per_page, page, last_page, query)
        if link:
            response.headers["Link"] = link
        return response

    def _commits(self, gist: Gist, request: Request, base: str) -> Response:
        per_page = min(max(validation.int_arg(request, "per_page", 30), 1), 100)
        page = max(validation.int_arg(request, "page", 1), 1)
        newest_first = list(reversed(gist.revisions))
        last_page = max(math.ceil(len(newest_first) / per_page), 1)
        chunk = newest_first[(page - 1) * per_page : page * per_page]
        items: list[object] = [render.history_item(gist, rev, base, self._login) for rev in chunk]
        response = conditional_get(request, items)
        link = render.link_header(f"{base}/gists/{gist.gist_id}/commits", per_page, page, last_page)
        if link:
            response.headers["Link"] = link
        return response

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

    def _render(self, gist: Gist, index: int, base: str) -> dict[str, object]:
        return render.gist_json(gist, index, base, self._login)

    def _commit(self, gist: Gist, files: dict[str, str], description: str | None, now: float, method: str) -> None:
        """Add a revision and log the write."""
        self._sequence += 1
        revision = gist.commit(files, description, now, self._sequence)
        self._stats.writes += 1
        self._stats.write_log.append({"ts": now, "method": method, "gist_id": gist.gist_id, "version": revision.sha})

    # ----------------------------------------------------------------------- auth

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
        response = error(401, message, DOCS)
        self._rate.charge(None)
        self._rate.headers(response, None)
        return response
