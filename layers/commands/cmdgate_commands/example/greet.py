"""`example.greet`: every knob of `@command`, each explained where it is set.

Try it on the local stack (`make run`) with a key that holds `commands.run:example.greet`:

    curl -X POST "$URL/v1/commands/example.greet" -H "Authorization: Bearer $KEY" \\
         -H "Idempotency-Key: greet-ada-1" -d '{"name": "Ada", "language": "fr"}'
    -> {"execution_id": "...", "status": "succeeded", "result": {"greeting": "Bonjour, Ada."}, ...}
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field

from cmdgate.commands import CommandContext, CommandError, CommandSpec, command

logger = Logger(child=True)

GREETINGS = {"en": "Hello", "fr": "Bonjour", "de": "Hallo"}
RESERVED_NAMES = frozenset({"root", "admin"})


# 1. Params: a pydantic model. Everything a caller sends is checked against it before the command
#    runs (strictly, as JSON: "5" is no integer); anything it refuses is a 400 problem, never a 500.
#    `extra="forbid"` refuses unknown fields, and every string has a bound. The model's JSON schema
#    is what `GET /v1/commands` shows callers.
class GreetParams(BaseModel):
    """Whom to greet, and how."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z .'-]*$", description="Who to greet.")
    language: Literal["en", "fr", "de"] = "en"
    excited: bool = False


# 2. Hooks: `pre_hooks` run before the handler, `post_hooks` after it succeeded, each called as
#    hook(spec, params, context). A pre-hook is the place for checks shared by several commands;
#    raising a CommandError refuses the run with that status (nothing else happens).
def refuse_reserved_names(spec: CommandSpec, params: Any, context: CommandContext) -> None:
    """Refuse to greet reserved account names (422)."""
    if params.name.strip().lower() in RESERVED_NAMES:
        raise CommandError(f"{spec.name} does not greet {params.name!r}.", status=422, code="NAME_RESERVED")


def log_greeting(spec: CommandSpec, params: Any, context: CommandContext) -> None:
    """Log that a greeting was made: ids and the language, never a param that could be secret."""
    logger.info("greeted", extra={"command": spec.name, "execution_id": context.execution_id, "lang": params.language})


@command(
    "example.greet",
    description="Greet someone in English, French or German (example pack).",
    params=GreetParams,
    # 3. Permission: what a caller's key must hold to run it. The default is
    #    `commands.run:<name>`; keys hold glob patterns, so `commands.run:example.*` covers the pack.
    permission="commands.run:example.greet",
    # 4. Idempotency: "required" makes callers send an Idempotency-Key header (400 without one);
    #    a repeated key answers the first run's result without running again. "optional" (the
    #    default) accepts requests without one.
    idempotency="required",
    # 5. Timeout: the run ends with 504 COMMAND_TIMEOUT past this; sync runs may take at most 28 s
    #    (API Gateway's limit), async runs up to the worker's. `context.remaining_s()` says what is left.
    timeout_s=5,
    # Modes: callers may run it synchronously or queue it (`Prefer: respond-async`).
    modes=("sync", "async"),
    # retry_safe: an attempt that died mid-run may be made again. True only when the command has no
    # effect, or keys its effect by `context.execution_id` so a second attempt changes nothing.
    retry_safe=True,
    pre_hooks=(refuse_reserved_names,),
    post_hooks=(log_greeting,),
)
def greet(params: GreetParams, context: CommandContext) -> dict[str, Any]:
    """6. The handler: params in, a JSON-able result out (stored with the execution, at most 256 KB).

    Raise CommandError(detail, status=..., code=...) for a failure the caller should see as a
    problem; TransientCommandError for one worth retrying (async runs are redelivered); use
    `context.services` for AWS clients, state, breakers and secrets (see the github and aws packs).
    """
    greeting = f"{GREETINGS[params.language]}, {params.name}" + ("!" if params.excited else ".")
    return {"greeting": greeting, "language": params.language}
