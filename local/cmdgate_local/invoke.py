"""`make invoke FN=<LogicalId> EVENT=events/<file>.json`: one function, once, in the Lambda emulator,
with the environment the template gives it, against the running local stack (`make run`)."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cmdgate_local.build_snapshot import process_alive
from cmdgate_local.lambda_runtime import (
    ExecutionEnvironment,
    FunctionRuntime,
    InvocationTimeout,
    InvokeResult,
    rie_binary,
)
from cmdgate_local.stack import StackConfig
from cmdgate_local.template import Template, load_template


class NoStack(Exception):
    """No local stack answers where the state file says one runs."""


def running_stack_state(state_file: Path) -> dict[str, Any]:
    """The state of the running local stack; NoStack (with the reason) when there is none."""
    hint = "start it with `make run`"
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise NoStack(f"no local stack is running (no {state_file}): {hint}") from None
    except (OSError, ValueError) as exc:
        raise NoStack(f"no local stack is running ({state_file} is unreadable: {exc}): {hint}") from None
    pid = state.get("pid")
    if isinstance(pid, int) and not process_alive(pid):
        raise NoStack(f"no local stack is running (its process {pid} is gone): {hint}")
    moto = urlsplit(str(state.get("moto_url", "")))
    try:
        with socket.create_connection((moto.hostname or "127.0.0.1", moto.port or 80), timeout=1):
            pass
    except OSError:
        raise NoStack(f"the local stack's AWS endpoint {state.get('moto_url')} does not answer: {hint}") from None
    return state


@contextmanager
def function_environment(
    config: StackConfig,
    state: Mapping[str, Any],
    function_id: str,
    log_dir: Path,
    *,
    environment: Mapping[str, str] | None = None,
    build_dir: Path | None = None,
) -> Iterator[ExecutionEnvironment]:
    """One started execution environment of `function_id`, with the environment the running stack
    gives it (plus `environment`), running `build_dir` (sam build's output unless given); stopped
    when the block ends. Its AWS calls are signed with the function's own access key, as the stack's are.
    """
    spec = Template(load_template(config.root / "template.yaml")).functions()[function_id]
    build_dir = build_dir or config.build_dir
    runtime = FunctionRuntime(
        name=function_id,
        handler=spec.handler,
        code_dir=build_dir / function_id,
        layer_dirs=tuple(build_dir / layer / "python" for layer in spec.layers),
        environment={**state["functions"][function_id], **(environment or {})},
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
    )
    env = ExecutionEnvironment(runtime, 0, rie_binary(config.sam_site_packages), config.runtime_python, log_dir)
    try:
        env.start()
        yield env
    finally:
        env.stop()


def failed(result: InvokeResult) -> bool:
    """A function error, or an API answer with a 5xx status."""
    return result.function_error or result.status.startswith("5")


def main(argv: list[str] | None = None) -> int:
    """Invoke once and print the function's response (and its log on a function error or a 5xx)."""
    parser = argparse.ArgumentParser(prog="cmdgate_local.invoke")
    parser.add_argument("function", nargs="?", help="logical id in template.yaml, e.g. ApiFunction")
    parser.add_argument("event", nargs="?", type=Path, help="event file, e.g. events/api_run_echo_sync.json")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--state-file", type=Path, default=None)
    parser.add_argument("--check-stack", action="store_true", help="only check that a local stack runs")
    args = parser.parse_args(argv)
    if not args.check_stack and (args.function is None or args.event is None):
        parser.error("FUNCTION and EVENT are required")

    config = StackConfig(root=args.root.resolve())
    try:
        state = running_stack_state(args.state_file or config.root / ".local-stack" / "state.json")
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check_stack:
        return 0
    functions = Template(load_template(config.root / "template.yaml")).functions()
    if args.function not in functions:
        print(f"unknown function {args.function}; one of: {', '.join(sorted(functions))}", file=sys.stderr)
        return 2
    if not args.event.is_file():
        print(f"no event file {args.event}; see events/", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cmdgate-invoke-") as log_dir:
        result: InvokeResult | None = None
        problem = ""
        try:
            with function_environment(config, state, args.function, Path(log_dir)) as env:
                result = env.invoke(args.event.read_bytes())
        except (InvocationTimeout, RuntimeError) as exc:
            problem = str(exc)
        log_file = Path(log_dir) / f"{args.function}-0.log"
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
    if result is None:
        print(f"{args.function}: {problem}", file=sys.stderr)
        print(log, file=sys.stderr)
        return 1
    try:
        print(json.dumps(result.json(), indent=2))
    except ValueError:
        print(result.payload.decode(errors="replace"))
    print(f"# {args.function}: {result.duration_ms} ms (cold start), status {result.status}", file=sys.stderr)
    if failed(result):
        print(log, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
