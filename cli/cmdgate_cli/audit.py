"""`cmdgate audit`: who did what, oldest first (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cmdgate_cli.session import session

# What an entry says beyond who, when and from where, by action.
_SUBJECT_FIELDS = ("execution_id", "command", "idempotency_key", "key", "version", "target", "redriven")


def _subject(entry: dict[str, Any]) -> str:
    parts = []
    for name in _SUBJECT_FIELDS:
        value = entry.get(name)
        if value is None:
            continue
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        parts.append(f"{name}={shown}")
    return " ".join(parts)


def audit(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option("--principal", help="Only this principal's actions.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action, e.g. key.created, command.run, state.written.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="RFC 3339 date-time (default: one day ago)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Stop after this many entries.")] = 1000,
) -> None:
    """The audit trail: keys created and revoked, commands run, state written, redrives, webhooks."""
    current = session(ctx)
    params = {name: value for name, value in (("principal", principal), ("action", action), ("since", since)) if value}
    entries: list[dict[str, Any]] = []
    for entry in current.api.pages("/v1/admin/audit", "entries", params):
        entries.append(entry)
        if len(entries) >= limit:
            break
    if current.out.json:
        current.out.data({"entries": entries})
        return
    table = Table("at", "action", "principal", "source ip", "request id", "what")
    for entry in entries:
        table.add_row(
            escape(str(entry.get("at", ""))),
            escape(str(entry.get("action", ""))),
            escape(str(entry.get("principal", ""))),
            escape(str(entry.get("source_ip", ""))),
            escape(str(entry.get("request_id", ""))),
            escape(_subject(entry)),
        )
    current.out.table(table)
