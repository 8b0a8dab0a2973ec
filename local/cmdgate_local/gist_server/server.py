"""Serving a GistApp on loopback: in a background thread for tests and the stack, or from the command line."""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from cmdgate_local.gist_server.app import GistApp


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
