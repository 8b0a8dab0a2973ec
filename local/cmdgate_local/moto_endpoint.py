"""moto in server mode on loopback, with its requests serialized.

moto checks a DynamoDB condition and applies the write without a lock while
its server handles requests in threads; DynamoDB itself is atomic per item.
One lock around the WSGI app restores that, so concurrency tests measure our
code, not moto's races. SQS long polls are let through unlocked: they block
inside moto and would stall every other call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serialized(app: WsgiApp) -> WsgiApp:
    """Wrap a WSGI app so one request at a time runs inside it (long polls excepted)."""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).endswith(".ReceiveMessage"):
            return app(environ, start_response)
        captured: list[tuple[Any, ...]] = []
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured.append((status, headers, exc_info))
            return written.append

        with lock:
            body = list(app(environ, capture))
        start_response(*captured[0])
        return written + body

    return wrapped


class MotoEndpoint:
    """A moto server thread on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL boto3 should use (AWS_ENDPOINT_URL)."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        app = serialized(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", self._port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
