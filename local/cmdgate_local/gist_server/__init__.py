"""A loopback stand-in for api.github.com's Gist API (REST API version 2022-11-28).

The local stack and the tests point the gist client at it with GIST_API_URL.
It keeps gists in memory and copies the parts of GitHub's behaviour the
project depends on: revisions with 40-hex shas, ETag/304 that costs no rate
limit, the 1 MiB per-file truncation with a raw_url, the 400 GitHub gives to
conditional headers on unsafe requests, the primary and secondary rate limits
with their headers, and GitHub's error bodies, and GET /gists listing each
token's own gists, and the two Actions dispatch endpoints (workflow and repository
dispatch, recorded for tests). Faults (502, slow answers, 429, and answers lost after the
write was applied) can be injected at runtime for chaos tests. Everything under /_admin/ is this
server's own control surface, not GitHub's API.

Modules: `revisions` (gists and their revisions), `render` (GitHub's JSON),
`validation` (bodies and headers GitHub refuses), `limits` (rate limits),
`faults` (injected faults), `dispatches` (Actions dispatch bodies), `responses`
(answer shapes, ETag/304), `admin` (/_admin/), `app` (the WSGI routes) and `server` (serving it).

Run it alone with ``python -m cmdgate_local.gist_server --port 8765``.
"""

from cmdgate_local.gist_server.app import GistApp
from cmdgate_local.gist_server.faults import Fault, FaultMode
from cmdgate_local.gist_server.limits import ANONYMOUS_LIMIT, PRIMARY_WINDOW_S, Limits
from cmdgate_local.gist_server.render import MAX_LISTED_FILES, TRUNCATE_BYTES
from cmdgate_local.gist_server.responses import API_VERSION, JSON
from cmdgate_local.gist_server.server import GistServer, main

__all__ = [
    "ANONYMOUS_LIMIT",
    "API_VERSION",
    "JSON",
    "MAX_LISTED_FILES",
    "PRIMARY_WINDOW_S",
    "TRUNCATE_BYTES",
    "Fault",
    "FaultMode",
    "GistApp",
    "GistServer",
    "Limits",
    "main",
]
