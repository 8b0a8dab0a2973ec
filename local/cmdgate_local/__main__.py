"""`python -m cmdgate_local`: run the local stack in the foreground until interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from cmdgate_local.stack import ADMIN_KEY_LINE, READY_LINE, LocalStack, StackConfig


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {value!r}")
        pairs[key] = val
    return pairs


def configure_logging(*, verbose: bool) -> None:
    """Warnings from everything; with `verbose`, the stack's own lines too (one per invocation).

    Libraries stay at WARNING even when verbose: their DEBUG output (botocore's signed requests
    included) is noise here and could leak credentials.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", force=True)
    logging.getLogger("cmdgate_local").setLevel(logging.INFO if verbose else logging.WARNING)
    # werkzeug raises its own logger to INFO unless it has a level: one line per request of every
    # loopback server (moto, the front, the Gist API), which is noise and fills a reader's pipe.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start, wait for a signal, stop."""
    parser = argparse.ArgumentParser(prog="cmdgate_local", description="cmdgate's local stack (no Docker).")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CMDGATE_PORT", "3000")))
    parser.add_argument("--pool-size", type=int, default=int(os.environ.get("CMDGATE_POOL_SIZE", "4")))
    parser.add_argument("--param", action="append", default=[], help="template parameter override KEY=VALUE")
    parser.add_argument("--env", action="append", default=[], help="function environment override KEY=VALUE")
    parser.add_argument("--authorizer-ttl", type=float, default=None, help="authorizer cache TTL in seconds")
    parser.add_argument("--state-file", type=Path, default=None)
    parser.add_argument("--log-dir", type=Path, default=None, help="where function logs go")
    parser.add_argument("--no-schedules", action="store_true", help="do not run scheduled functions")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log every invocation: function, environment, cold/warm, duration, status",
    )
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)

    root = args.root.resolve()
    params = {"CommandPacks": "builtin,testing,github,aws,example", **_pairs(args.param)}
    config = StackConfig(
        root=root,
        api_port=args.port,
        pool_size=args.pool_size,
        parameter_overrides=params,
        authorizer_ttl_s=args.authorizer_ttl,
        bootstrap_admin_key=os.environ.get("CMDGATE_BOOTSTRAP_ADMIN_KEY") or None,
        environment_overrides=_pairs(args.env),
        state_file=args.state_file or root / ".local-stack" / "state.json",
        run_schedules=not args.no_schedules,
        log_dir=args.log_dir,
    )
    stack = LocalStack(config)
    stopped = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        if not config.bootstrap_admin_key:
            print(ADMIN_KEY_LINE.format(key=stack.admin_key), flush=True)
        print(f"function logs: {config.function_log_dir}", flush=True)
        print(READY_LINE.format(url=stack.url), flush=True)
        stopped.wait()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
