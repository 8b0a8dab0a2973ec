"""The `cmdgate` command: global options, the subcommand groups, and exit codes instead of tracebacks."""

from __future__ import annotations

import sys
from typing import Annotated

import httpx
import typer

from cmdgate_cli import audit, catalogue, executions, keys, ops, state
from cmdgate_cli.config import URL_ENV
from cmdgate_cli.output import OutputMode
from cmdgate_cli.problems import CliError, ExitCode, Problem
from cmdgate_cli.session import Session, session

app = typer.Typer(
    name="cmdgate",
    help="Operate a cmdgate deployment: keys, commands, runs, state, dead letters, audit and health.\n\n"
    "Exit codes: 0 ok, 1 a run ended failed/dead_lettered/cancelled, 2 usage, 3 refused by the API, "
    "4 unavailable (5xx, 429, no connection, timeout).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(keys.app, name="keys")
app.add_typer(catalogue.commands_app, name="commands")
app.add_typer(executions.app, name="executions")
app.add_typer(state.app, name="state")
app.add_typer(ops.dlq_app, name="dlq")
app.command("run")(catalogue.run)
app.command("health")(ops.health)
app.command("openapi")(ops.openapi)
app.command("configure")(ops.configure)
app.command("audit")(audit.audit)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", envvar=URL_ENV, help="The API's base URL (default: config, then local).")
    ] = None,
    output: Annotated[OutputMode, typer.Option("--output", "-o", help="text for people, json for scripts.")] = (
        OutputMode.text
    ),
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for one HTTP answer.")] = 60.0,
) -> None:
    """Global options go before the subcommand: `cmdgate --output json keys list`."""
    session(ctx).configure(url, output, timeout)


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    """Run the CLI and return its exit code; every failure is a message, never a traceback."""
    current = Session(transport)
    command = typer.main.get_command(app)
    try:
        returned = command.main(args=argv, prog_name="cmdgate", standalone_mode=False, obj=current)
    except CliError as error:
        current.out.problem(error.problem)
        return int(error.exit_code)
    except typer.Abort:
        current.out.err.print("aborted")
        return 130
    except typer.TyperException as error:  # typer's (vendored click's) usage errors: they print themselves
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            current.out.problem(Problem(title="Usage error", detail=str(error), code="USAGE"))
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - a bug in the CLI is reported in one line, not a traceback
        current.out.problem(Problem(title="Unexpected error in the CLI", detail=type(error).__name__, code="CLI_BUG"))
        return 70  # EX_SOFTWARE
    finally:
        current.close()
    if isinstance(returned, int) and returned:  # --help and friends: click's own exit code
        return returned
    return int(current.exit_code)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())
