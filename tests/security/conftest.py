"""Fixtures of the security suite (the shared `stack` comes from tests/conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response


class Target:
    """A loopback server that counts requests; `/redirect?to=URL` answers 302 to URL."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self.server.server_port

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.paths.append(request.path)
        if request.path == "/redirect":
            response = Response(status=302, headers={"Location": request.args["to"]})
        else:
            response = Response('{"ok": true}', content_type="application/json")
        return response(environ, start_response)


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
