"""`cmdgate keys create|list|revoke`: API keys (admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cmdgate_cli.client import segment
from cmdgate_cli.session import session

app = typer.Typer(help="API keys: issue, list, revoke (needs the admin permission).", no_args_is_help=True)


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A label for the key.")],
    permission: Annotated[
        list[str], typer.Option("--permission", "-p", help="A permission, e.g. commands.run:echo (repeatable).")
    ],
    quota: Annotated[int | None, typer.Option(help="Rate limit: requests per window.")] = None,
    window: Annotated[int | None, typer.Option(help="Rate limit window in seconds (with --quota).")] = None,
    expires_at: Annotated[int | None, typer.Option(help="Epoch seconds after which the key stops working.")] = None,
) -> None:
    """Issue a key; it is printed this once and never again."""
    current = session(ctx)
    body: dict[str, Any] = {"name": name, "permissions": permission}
    if quota is not None or window is not None:
        if quota is None or window is None:
            raise typer.BadParameter("--quota and --window go together.")
        body["rate_limit"] = {"quota": quota, "window_s": window}
    if expires_at is not None:
        body["expires_at"] = expires_at
    created = current.api.request("POST", "/v1/admin/keys", json=body).json()
    if current.out.json:
        current.out.data(created)
        return
    current.out.out.print(f"key_id:  {escape(str(created['key_id']))}")
    current.out.out.print(f"api_key: {escape(str(created['api_key']))}")
    current.out.note("[yellow]The key is shown only now: keep it somewhere safe.[/]")


@app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """Every issued key (never the key itself)."""
    current = session(ctx)
    found = list(current.api.pages("/v1/admin/keys", "keys"))
    if current.out.json:
        current.out.data({"keys": found})
        return
    table = Table("key_id", "name", "status", "permissions", "rate limit", "created", "expires")
    for key in found:
        limit = key.get("rate_limit") or {}
        status = str(key.get("status", ""))
        table.add_row(
            escape(str(key.get("key_id", ""))),
            escape(str(key.get("name", ""))),
            f"[green]{escape(status)}[/]" if status == "active" else f"[red]{escape(status)}[/]",
            escape(", ".join(key.get("permissions") or [])),
            f"{limit.get('quota')}/{limit.get('window_s')} s" if limit else "",
            _when(key.get("created_at")),
            _when(key.get("expires_at")),
        )
    current.out.table(table)


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")]) -> None:
    """Revoke a key (it stops working within the authorizer cache TTL)."""
    current = session(ctx)
    current.api.request("DELETE", f"/v1/admin/keys/{segment(key_id)}")
    if current.out.json:
        current.out.data({"key_id": key_id, "revoked": True})
    else:
        current.out.note(f"revoked {escape(key_id)}")
