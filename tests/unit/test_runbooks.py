"""Every alarm and every alert has a runbook in docs/runbooks/ (what it means, confirm, fix, verify),
linked from the alarm's description and the alert's message, and every `cmdgate ...` command a
runbook gives exists in the CLI, with the options it uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from cmdgate.alerts import ALERTS, Alerts
from cmdgate_cli.app import app

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
SECTIONS = ("## What it means", "## Confirm", "## Fix", "## Verify")
_INLINE = re.compile(r"`(cmdgate [^`]+)`")
_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def alarms(template_data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template_data["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def runbook_pages() -> list[Path]:
    return sorted(RUNBOOKS.rglob("*.md"))


def cli_lines(text: str) -> list[str]:
    """The `cmdgate ...` commands of a page: inline code and lines of code blocks."""
    found = _INLINE.findall(text)
    for block in _BLOCK.findall(text):
        found.extend(line.strip() for line in block.splitlines() if line.strip().startswith("cmdgate "))
    return found


def option_names(command: Any) -> set[str]:
    """The option spellings of a (typer's vendored) click command."""
    options = [param for param in command.params if param.param_type_name == "option"]
    return {name for option in options for name in (*option.opts, *option.secondary_opts)}


def check_cli(line: str) -> None:
    """Walk `line` down the CLI's command tree; every option must belong to the command it follows."""
    tokens = shlex.split(line)[1:]
    command: Any = typer.main.get_command(app)
    index = 0
    while hasattr(command, "commands"):  # a group: the next word is a subcommand or one of its options
        assert index < len(tokens), f"`{line}`: a subcommand is missing after {' '.join(tokens[:index]) or 'cmdgate'}"
        token = tokens[index]
        index += 1
        if token.startswith("-"):
            assert token.split("=")[0] in option_names(command), f"`{line}`: no option {token} here"
            option = next(p for p in command.params if token.split("=")[0] in p.opts)
            index += 0 if (getattr(option, "is_flag", False) or "=" in token) else 1
            continue
        assert token in command.commands, f"`{line}`: `{token}` is not a command (one of {sorted(command.commands)})"
        command = command.commands[token]
    for token in tokens[index:]:
        if token.startswith("-"):
            assert token.split("=")[0] in option_names(command), f"`{line}`: {command.name} has no option {token}"


@pytest.mark.parametrize("alarm", ["ApiCanaryErrorsAlarm", "ExecutionsDLQDepthAlarm"])
def test_some_alarms_are_found(template_data: dict[str, Any], alarm: str) -> None:
    assert alarm in alarms(template_data)


def test_every_alarm_has_a_runbook_its_description_links(template_data: dict[str, Any]) -> None:
    for alarm_id, alarm in alarms(template_data).items():
        page = RUNBOOKS / "alarms" / f"{alarm_id}.md"
        assert page.is_file(), f"{alarm_id} has no runbook"
        assert page.read_text().startswith(f"# {alarm_id}\n")
        assert f"(runbook docs/runbooks/alarms/{alarm_id}.md)" in alarm["Properties"]["AlarmDescription"]


def test_every_alert_has_a_runbook_its_message_links() -> None:
    alerts = Alerts(None, "", None, "", runbook_base="https://example.test/cmdgate/blob/main/")
    for alert in ALERTS:
        page = RUNBOOKS / f"{alert}.md"
        assert page.is_file(), f"{alert} has no runbook"
        assert page.read_text().startswith(f"# {alert}\n")
        assert alerts.runbook(alert) == f"https://example.test/cmdgate/blob/main/docs/runbooks/{alert}.md"


def test_every_runbook_says_what_it_means_and_how_to_confirm_fix_and_verify() -> None:
    pages = runbook_pages()
    assert len(pages) >= len(ALERTS)
    for page in pages:
        text = page.read_text()
        positions = [text.find(section) for section in SECTIONS]
        assert -1 not in positions and positions == sorted(positions), f"{page.name}: sections {SECTIONS} in order"
        confirm = text[positions[1] : positions[2]]
        assert "cmdgate " in confirm or "aws " in confirm or "dashboard" in confirm, f"{page.name}: no way to confirm"


def test_every_cli_command_in_a_runbook_exists() -> None:
    lines = [line for page in runbook_pages() for line in cli_lines(page.read_text())]
    assert len(lines) > 20
    for line in lines:
        check_cli(line)


def test_relative_links_between_runbooks_resolve() -> None:
    for page in runbook_pages():
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize(
    "line",
    ["cmdgate dlq purge", "cmdgate run echo --params x=1", "cmdgate state", "cmdgate --nope health"],
)
def test_the_cli_check_refuses_what_does_not_exist(line: str) -> None:
    with pytest.raises(AssertionError):
        check_cli(line)
