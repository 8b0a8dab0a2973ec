"""Printing: data on stdout (JSON for machines, tables for people), problems and progress on stderr."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cmdgate_cli.problems import Problem


class OutputMode(StrEnum):
    """`--output`: `text` for people, `json` for scripts."""

    text = "text"
    json = "json"


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False)


class Output:
    """The two streams of one invocation; consoles are made per call so tests may swap sys.stdout."""

    def __init__(self, mode: OutputMode = OutputMode.text) -> None:
        self.mode = mode
        self.out = Console(file=sys.stdout, soft_wrap=True, highlight=False)
        self.err = Console(file=sys.stderr, soft_wrap=True, highlight=False)

    @property
    def json(self) -> bool:
        return self.mode is OutputMode.json

    def data(self, value: Any) -> None:
        """A JSON document on stdout, unwrapped and uncoloured so it pipes into jq."""
        sys.stdout.write(to_json(value) + "\n")
        sys.stdout.flush()

    def table(self, table: Table) -> None:
        self.out.print(table)

    def note(self, message: str) -> None:
        """A remark for people (stderr, so stdout stays data); silent with --output json."""
        if not self.json:
            self.err.print(message)

    def problem(self, problem: Problem) -> None:
        """An error: its problem document on stdout for scripts, or title, detail and code on stderr."""
        if self.json:
            self.data({"error": problem.to_json()})
            return
        status = f"{problem.status} " if problem.status else ""
        self.err.print(f"[bold red]error:[/] {escape(problem.title)} [dim]({status}{escape(problem.code)})[/]")
        if problem.detail:
            self.err.print(f"  {escape(problem.detail)}")
        for error in problem.errors:
            location = ".".join(str(part) for part in error.get("loc") or [])
            self.err.print(f"  - {escape(location)}: {escape(str(error.get('msg', '')))}")
        for name, value in problem.extra.items():
            self.err.print(f"  {escape(name)}: {escape(json.dumps(value, ensure_ascii=False))}")
        if problem.retry_after:
            self.err.print(f"  retry after: {escape(problem.retry_after)} s")
        if problem.request_id:
            self.err.print(f"  [dim]request id: {escape(problem.request_id)}[/]")
