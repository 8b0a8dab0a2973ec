"""`make invoke FN=<LogicalId> EVENT=events/<file>.json`: one function, once, in the Lambda emulator,
with the environment the template gives it, against the running local stack (`make run`)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from cmdgate_local.lambda_runtime import ExecutionEnvironment, FunctionRuntime, rie_binary
from cmdgate_local.stack import StackConfig
from cmdgate_local.template import Template, load_template


def main(argv: list[str] | None = None) -> int:
    """Invoke once and print the function's response (and its log on a function error)."""
    parser = argparse.ArgumentParser(prog="cmdgate_local.invoke")
    parser.add_argument("function", help="logical id in template.yaml, e.g. ApiFunction")
    parser.add_argument("event", type=Path, help="event file, e.g. events/api_run_echo_sync.json")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args(argv)

    config = StackConfig(root=args.root.resolve())
    state_file = args.state_file or config.root / ".local-stack" / "state.json"
    if not state_file.exists():
        print(f"no running local stack ({state_file} is missing): start `make run` first", file=sys.stderr)
        return 2
    state = json.loads(state_file.read_text())
    functions = Template(load_template(config.root / "template.yaml")).functions()
    if args.function not in functions:
        print(f"unknown function {args.function}; one of: {', '.join(sorted(functions))}", file=sys.stderr)
        return 2
    spec = functions[args.function]
    runtime = FunctionRuntime(
        name=args.function,
        handler=spec.handler,
        code_dir=config.build_dir / args.function,
        layer_dirs=tuple(config.build_dir / layer / "python" for layer in spec.layers),
        environment=dict(state["functions"][args.function]),
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
    )
    with tempfile.TemporaryDirectory(prefix="cmdgate-invoke-") as log_dir:
        env = ExecutionEnvironment(
            runtime, 0, rie_binary(config.sam_site_packages), config.runtime_python, Path(log_dir)
        )
        env.start()
        try:
            result = env.invoke(args.event.read_bytes())
        finally:
            env.stop()
        log = (Path(log_dir) / f"{args.function}-0.log").read_text(errors="replace")
    try:
        print(json.dumps(result.json(), indent=2))
    except ValueError:
        print(result.payload.decode(errors="replace"))
    print(f"# {args.function}: {result.duration_ms} ms (cold start)", file=sys.stderr)
    if result.function_error:
        print(log, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
