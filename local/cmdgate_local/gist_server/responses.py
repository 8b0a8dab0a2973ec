"""GitHub's answer shapes: JSON and error bodies, ETag/304 and the headers every API answer carries."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import TypeAlias

from werkzeug.wrappers import Request, Response

API_VERSION = "2022-11-28"
JSON: TypeAlias = dict[str, object] | list[object] | str | int | float | bool | None

DOCS = "https://docs.github.com/rest"
DOC_CREATE = f"{DOCS}/gists/gists#create-a-gist"
DOC_GET = f"{DOCS}/gists/gists#get-a-gist"
DOC_UPDATE = f"{DOCS}/gists/gists#update-a-gist"
DOC_DELETE = f"{DOCS}/gists/gists#delete-a-gist"
DOC_COMMITS = f"{DOCS}/gists/gists#list-gist-commits"
DOC_REVISION = f"{DOCS}/gists/gists#get-a-gist-revision"
DOC_RATE = f"{DOCS}/using-the-rest-api/rate-limits-for-the-rest-api"
DOC_SECONDARY = f"{DOC_RATE}#about-secondary-rate-limits"
DOC_CONDITIONAL = f"{DOCS}/using-the-rest-api/best-practices-for-using-the-rest-api"


class Reject(Exception):
    """Ends request handling early with a ready answer."""

    def __init__(self, response: Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


def json_response(status: int, body: JSON, headers: Mapping[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = Response(data, status=status, content_type="application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def empty(status: int) -> Response:
    response = Response(status=status)
    # werkzeug adds text/plain by default; GitHub sends no type without a body.
    del response.headers["Content-Type"]
    return response


def error(status: int, message: str, doc: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(
        status,
        {"message": message, "documentation_url": doc, "status": str(status)},
        headers,
    )


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def etag_matches(if_none_match: str, tag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2), as If-None-Match requires."""
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == bare for candidate in if_none_match.split(","))


def conditional_get(request: Request, body: JSON) -> Response:
    """200 with an ETag, or an empty 304 when If-None-Match names it."""
    response = json_response(200, body)
    tag = etag(response.get_data())
    response.headers["ETag"] = tag
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and etag_matches(if_none_match, tag):
        not_modified = empty(304)
        not_modified.headers["ETag"] = tag
        return not_modified
    return response


def common_headers(response: Response, request: Request) -> None:
    if "X-GitHub-Api-Version" in request.headers:
        response.headers["X-GitHub-Api-Version-Selected"] = API_VERSION
    response.headers["X-GitHub-Media-Type"] = "github.v3; format=json"
    response.headers["X-GitHub-Request-Id"] = uuid.uuid4().hex[:20].upper()
    response.headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
    if request.method == "GET":
        response.headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
