"""`cmdgate executions get|wait|cancel`: one execution's status, its end, or cancelling it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from cmdgate_cli.catalogue import show_execution
from cmdgate_cli.client import segment
from cmdgate_cli.problems import CliError, ExitCode, Problem
from cmdgate_cli.session import session
from cmdgate_cli.waiting import exit_code_of, watch

app = typer.Typer(help="Executions: status, waiting for the end, cancelling.", no_args_is_help=True)
ExecutionId = Annotated[str, typer.Argument(help="The execution id (from `run --async` or a Location header).")]


@app.command("get")
def get(ctx: typer.Context, execution_id: ExecutionId) -> None:
    """An execution as it is now (exit 0 whatever its status)."""
    current = session(ctx)
    show_execution(current, current.api.get_json(f"/v1/executions/{segment(execution_id)}"))


@app.command("wait")
def wait(
    ctx: typer.Context,
    execution_id: ExecutionId,
    timeout: Annotated[float, typer.Option("--wait-timeout", min=1, help="Seconds to wait (then exit 4).")] = 300.0,
) -> None:
    """Wait until an execution ends, with a live status; exit 1 if it failed, was dead-lettered or cancelled."""
    current = session(ctx)
    execution = watch(current.api, current.out, execution_id, timeout)
    show_execution(current, execution)
    current.exit_code = exit_code_of(execution)


@app.command("cancel")
def cancel(ctx: typer.Context, execution_id: ExecutionId) -> None:
    """Cancel: a queued execution never runs; a running one is asked to stop; a finished one refuses (409)."""
    current = session(ctx)
    try:
        response = current.api.request("POST", f"/v1/executions/{segment(execution_id)}/cancel")
    except CliError as error:
        if error.problem.status == 405 or (error.problem.status == 404 and error.problem.detail == "No such route."):
            raise CliError(
                ExitCode.REFUSED,
                Problem(
                    title="This deployment cannot cancel executions",
                    detail=f"POST /v1/executions/{{id}}/cancel answered {error.problem.status} "
                    f"({error.problem.title}); the server predates cancellation.",
                    code=error.problem.code or "CANCEL_UNSUPPORTED",
                    status=error.problem.status,
                    request_id=error.problem.request_id,
                ),
            ) from None
        raise
    body = response.json() if response.content else {"execution_id": execution_id}
    if current.out.json:
        current.out.data(body)
    elif isinstance(body, dict) and body.get("status"):
        show_execution(current, body)
    else:
        current.out.note(f"cancel requested for {escape(execution_id)}")
