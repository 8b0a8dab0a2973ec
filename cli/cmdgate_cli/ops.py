"""`cmdgate health`, `openapi`, `configure` and `dlq list|redrive`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cmdgate_cli.config import FileConfig, config_path, read_config, write_config
from cmdgate_cli.problems import ExitCode, usage_error
from cmdgate_cli.session import session

dlq_app = typer.Typer(help="Dead-lettered executions: list and redrive (admin).", no_args_is_help=True)
_STATUS_COLOUR = {"healthy": "green", "ok": "green", "degraded": "yellow", "unhealthy": "red", "failing": "red"}


def _coloured(status: str) -> str:
    return f"[{_STATUS_COLOUR.get(status, 'white')}]{escape(status)}[/]"


def health(
    ctx: typer.Context,
    detailed: Annotated[
        bool, typer.Option("--detailed", help="GET /v1/admin/health: failing checks' details.")
    ] = False,
) -> None:
    """The dependencies' health as a table; exit 4 when the service is unhealthy (503)."""
    current = session(ctx)
    path = "/v1/admin/health" if detailed else "/v1/health"
    response = current.api.request("GET", path, authenticated=detailed, accept=frozenset({503}))
    report: dict[str, Any] = response.json()  # 503 carries the report too
    if response.status_code == 503:
        current.exit_code = ExitCode.UNAVAILABLE
    if current.out.json:
        current.out.data(report)
        return
    status = str(report.get("status", "?"))
    table = Table("check", "status", "latency", "detail", title=f"cmdgate {current.api.url}: {_coloured(status)}")
    for name, check in sorted((report.get("checks") or {}).items()):
        check = check if isinstance(check, dict) else {}
        details = {k: v for k, v in check.items() if k not in {"status", "latency_ms"}}
        latency = check.get("latency_ms")
        table.add_row(
            escape(name),
            _coloured(str(check.get("status", "?"))),
            f"{latency:.0f} ms" if isinstance(latency, int | float) else "",
            escape(", ".join(f"{k}={v}" for k, v in details.items())),
        )
    current.out.table(table)


def openapi(ctx: typer.Context) -> None:
    """Print the OpenAPI description the API serves."""
    current = session(ctx)
    current.out.data(current.api.get_json("/v1/openapi.json", authenticated=False))


def configure(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--set-url", help="The API's base URL to keep.")] = None,
    api_key_stdin: Annotated[
        bool, typer.Option("--api-key-stdin", help="Read the key from stdin instead of prompting for it.")
    ] = False,
) -> None:
    """Keep the URL and API key in the config file (0600; never printed back)."""
    current = session(ctx)
    path = config_path()
    existing = read_config(path)
    if api_key_stdin:
        key = sys.stdin.readline().strip()
    else:
        key = typer.prompt(
            "API key (input hidden; empty keeps the current one)", default="", hide_input=True, show_default=False
        ).strip()
    key = key or existing.api_key or ""
    if not key and not (url or existing.url):
        raise usage_error("Nothing to keep", "Give --set-url and/or an API key.")
    write_config(path, FileConfig(url=(url or existing.url), api_key=key or None))
    if current.out.json:
        current.out.data({"config": str(path), "url": url or existing.url, "api_key": "set" if key else "unset"})
    else:
        current.out.note(f"saved {escape(str(path))} (mode 0600)")


@dlq_app.command("list")
def dlq_list(ctx: typer.Context) -> None:
    """Dead-lettered executions, oldest first."""
    current = session(ctx)
    found = list(current.api.pages("/v1/admin/dlq", "executions"))
    if current.out.json:
        current.out.data({"executions": found})
        return
    table = Table("execution_id", "command", "attempts", "created_at", "error")
    for execution in found:
        error = execution.get("error") or {}
        table.add_row(
            escape(str(execution.get("execution_id", ""))),
            escape(str(execution.get("command", ""))),
            str(execution.get("attempts", "")),
            escape(str(execution.get("created_at", ""))),
            escape(f"{error.get('code', '')}: {error.get('detail', '')}" if error else ""),
        )
    current.out.table(table)


@dlq_app.command("redrive")
def dlq_redrive(
    ctx: typer.Context,
    execution_ids: Annotated[
        list[str] | None, typer.Argument(help="Which dead letters (default: the server's first page of them).")
    ] = None,
) -> None:
    """Give dead-lettered executions one new attempt each."""
    current = session(ctx)
    body = {"execution_ids": execution_ids} if execution_ids else {}
    result = current.api.request("POST", "/v1/admin/dlq/redrive", json=body).json()
    if current.out.json:
        current.out.data(result)
        return
    for execution_id in result.get("redriven") or []:
        current.out.out.print(f"[green]redriven[/] {escape(execution_id)}")
    for execution_id in result.get("skipped") or []:
        current.out.out.print(f"[yellow]skipped[/]  {escape(execution_id)}")
    if not result.get("redriven") and not result.get("skipped"):
        current.out.note("nothing to redrive")
