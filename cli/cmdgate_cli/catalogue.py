"""`cmdgate commands list|show` and `cmdgate run`: the catalogue and running a command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cmdgate_cli.client import segment
from cmdgate_cli.output import to_json
from cmdgate_cli.problems import CliError, ExitCode, Problem, usage_error
from cmdgate_cli.session import Session, session
from cmdgate_cli.waiting import describe, exit_code_of, watch

commands_app = typer.Typer(help="The commands this key may run.", no_args_is_help=True)


@commands_app.command("list")
def list_commands(ctx: typer.Context) -> None:
    """The commands the caller may run."""
    current = session(ctx)
    found = list(current.api.pages("/v1/commands", "commands"))
    if current.out.json:
        current.out.data({"commands": found})
        return
    table = Table("name", "modes", "idempotency", "timeout", "permission", "description")
    for command in found:
        table.add_row(
            f"[bold]{escape(str(command.get('name', '')))}[/]",
            escape(",".join(command.get("modes") or [])),
            escape(str(command.get("idempotency", ""))),
            f"{command.get('timeout_s', '')} s",
            escape(str(command.get("permission", ""))),
            escape(str(command.get("description", ""))),
        )
    current.out.table(table)


@commands_app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The command's name.")]) -> None:
    """One command: its description, modes and params schema."""
    current = session(ctx)
    found = next((c for c in current.api.pages("/v1/commands", "commands") if c.get("name") == name), None)
    if found is None:
        detail = f"{name!r} is not among the commands this key may run."
        raise CliError(ExitCode.REFUSED, Problem(title="No such command", detail=detail, code="NOT_FOUND"))
    if current.out.json:
        current.out.data(found)
        return
    out = current.out.out
    out.print(f"[bold]{escape(name)}[/]: {escape(str(found.get('description', '')))}")
    out.print(f"modes: {escape(', '.join(found.get('modes') or []))}   idempotency key: {found.get('idempotency')}")
    out.print(f"timeout: {found.get('timeout_s')} s   permission: {escape(str(found.get('permission', '')))}")
    out.print("params schema:")
    out.print(escape(to_json(found.get("params_schema") or {})))


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`k=v` (a string) and `k:=<JSON>` (any JSON value), as httpie spells them."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, typed, raw = _split(pair)
        if not typed:
            params[name] = raw
            continue
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError as error:
            raise usage_error("Bad --param", f"{name}:= wants a JSON value ({error.msg}).") from None
    return params


def _split(pair: str) -> tuple[str, bool, str]:
    equals = pair.find("=")
    if equals <= 0:
        raise usage_error("Bad --param", f"{pair!r}: write name=value (a string) or name:=<JSON>.")
    if pair[equals - 1] == ":":
        if equals == 1:
            raise usage_error("Bad --param", f"{pair!r} has no name.")
        return pair[: equals - 1], True, pair[equals + 1 :]
    return pair[:equals], False, pair[equals + 1 :]


def read_json_file(path: str, what: str) -> Any:
    """A JSON document from a file, or stdin for `-`."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise usage_error(f"Cannot read {what}", f"{path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise usage_error(f"{what} is not JSON", f"{path}: {error.msg} at line {error.lineno}") from None


def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The command to run (see `cmdgate commands list`).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="name=value (string) or name:=<JSON> (repeatable).")
    ] = None,
    json_file: Annotated[
        str | None, typer.Option("--json", help="A file holding the params object (`-` for stdin); --param adds to it.")
    ] = None,
    run_async: Annotated[bool, typer.Option("--async", help="Queue the run (Prefer: respond-async).")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="With --async: wait for the end, showing its status.")] = False,
    wait_timeout: Annotated[float, typer.Option("--wait-timeout", min=1, help="Seconds --wait waits.")] = 300.0,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", "-k", help="Run at most once for this key.")
    ] = None,
) -> None:
    """Run a command: sync by default (exit 1 if it fails), or --async [--wait]."""
    current = session(ctx)
    params: dict[str, Any] = {}
    if json_file is not None:
        loaded = read_json_file(json_file, "params file")
        if not isinstance(loaded, dict):
            raise usage_error("Params must be a JSON object", f"{json_file} holds a {type(loaded).__name__}.")
        params.update(loaded)
    params.update(parse_params(param or []))
    headers = {"Prefer": "respond-async"} if run_async else {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    try:
        response = current.api.request("POST", f"/v1/commands/{segment(name)}", json=params, headers=headers)
    except CliError as error:
        if error.problem.extra.get("execution_id"):  # it started and failed: a failed run, not a refusal
            raise CliError(ExitCode.FAILED_RUN, error.problem) from None
        raise
    body = response.json()
    if response.status_code == 202:
        _queued(current, body, wait, wait_timeout)
        return
    if current.out.json:
        current.out.data(body)
    else:
        current.out.note(f"{escape(str(body.get('execution_id')))} {escape(name)}: {body.get('status')}")
        current.out.data(body.get("result"))


def _queued(current: Session, accepted: dict[str, Any], wait: bool, timeout_s: float) -> None:
    execution_id = str(accepted["execution_id"])
    if not wait:
        if current.out.json:
            current.out.data(accepted)
        else:
            current.out.note(f"queued; `cmdgate executions wait {escape(execution_id)}` follows it")
            current.out.out.print(escape(execution_id))
        return
    execution = watch(current.api, current.out, execution_id, timeout_s)
    show_execution(current, execution)
    current.exit_code = exit_code_of(execution)


def show_execution(current: Session, execution: dict[str, Any]) -> None:
    """An execution: the whole view with --output json, else its status line and result or error."""
    if current.out.json:
        current.out.data(execution)
        return
    status = str(execution.get("status"))
    colour = {"succeeded": "green", "queued": "blue", "running": "blue"}.get(status, "red")
    current.out.err.print(f"[{colour}]{escape(describe(execution))}[/]")
    if status == "succeeded":
        current.out.data(execution.get("result"))
    elif error := execution.get("error"):
        code, detail = escape(str(error.get("code", ""))), escape(str(error.get("detail", "")))
        current.out.err.print(f"  {code} ({error.get('status', '')}): {detail}")
