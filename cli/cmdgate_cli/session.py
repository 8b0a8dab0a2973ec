"""What every subcommand of one invocation shares: the output streams, the API, the exit code so far."""

from __future__ import annotations

from typing import cast

import httpx
import typer

from cmdgate_cli.client import Api
from cmdgate_cli.config import resolve_target
from cmdgate_cli.output import Output, OutputMode
from cmdgate_cli.problems import ExitCode


class Session:
    """Set up by the root callback from the global options; subcommands reach it through `session(ctx)`."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self.transport = transport
        self.out = Output()
        self.url_flag: str | None = None
        self.timeout_s = 60.0
        self.exit_code = ExitCode.OK
        self._api: Api | None = None

    def configure(self, url: str | None, output: OutputMode, timeout_s: float) -> None:
        self.url_flag, self.out, self.timeout_s = url, Output(output), timeout_s

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(resolve_target(self.url_flag), self.timeout_s, self.transport)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def session(ctx: typer.Context) -> Session:
    return cast(Session, ctx.obj)
