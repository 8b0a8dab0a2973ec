"""X-Ray SDK subsegments only when asked for: otherwise the functions never import the SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmdgate import tracing

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"CMDGATE_XRAY_SDK": "off"}, False),
        ({"CMDGATE_XRAY_SDK": "on"}, True),
        ({"CMDGATE_XRAY_SDK": " ON "}, True),
        ({"CMDGATE_XRAY_SDK": "on", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"CMDGATE_XRAY_SDK": "on", "POWERTOOLS_TRACE_DISABLED": "false"}, True),
    ],
)
def test_the_sdk_is_on_only_when_asked_and_not_disabled(environ: dict[str, str], enabled: bool) -> None:
    assert tracing.sdk_enabled(environ) is enabled


def test_no_tracer_hands_back_the_function_itself() -> None:
    def handler(event: object, context: object) -> str:
        return "ok"

    no = tracing.NoTracer()
    assert no.capture_lambda_handler(handler) is handler
    assert no.capture_method(handler) is handler


def test_on_gives_powertools_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools import Tracer

    monkeypatch.setenv("CMDGATE_XRAY_SDK", "on")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    assert isinstance(tracing.tracer(), Tracer)


def _modules_after(function: str, code: str, **environ: str) -> set[str]:
    """Top-level packages imported by a fresh interpreter that imports a function's handler and runs `code`."""
    path = [ROOT / "functions" / function, ROOT / "layers" / "resilience", ROOT / "layers" / "commands"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "cmdgate",
        "KEYS_TABLE": "keys",
        **environ,
    }
    script = f"import sys, app\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT / "functions" / function,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(done.stdout.split())


def test_the_authorizer_path_builds_no_dynamodb_resource_and_imports_no_xray_sdk_or_pydantic() -> None:
    # The subprocess fails (check=True) if the store built the DynamoDB resource.
    code = (
        "from cmdgate import aws\nfrom cmdgate.wiring import services\nservices().api_keys\n"
        "assert aws.dynamodb_resource.cache_info().currsize == 0"
    )
    modules = _modules_after("authorizer", code)
    assert "cmdgate.auth.apikeys" in modules  # the first request's store was built
    assert not {m for m in modules if m.split(".")[0] in {"aws_xray_sdk", "pydantic", "pydantic_settings", "httpx"}}


@pytest.mark.parametrize("function", ["api", "worker", "state_sync", "event_processor", "healer"])
def test_no_function_imports_the_xray_sdk_unless_asked(function: str) -> None:
    assert not {m for m in _modules_after(function, "") if m.startswith("aws_xray_sdk")}
    asked = _modules_after(function, "", CMDGATE_XRAY_SDK="on", POWERTOOLS_TRACE_DISABLED="false")
    assert "aws_xray_sdk.core" in asked


def test_the_event_processor_loads_httpx_only_for_a_callback_delivery() -> None:
    """Most of its records are command events: httpx (the callbacks' client) is not an init cost."""
    assert "httpx" not in _modules_after("event_processor", "")
    assert "httpx" in _modules_after("event_processor", "from cmdgate.wiring import services\nservices().callbacks")


@pytest.mark.parametrize("function", ["worker", "event_processor"])
def test_loading_the_command_packs_imports_neither_httpx_nor_the_event_handler(function: str) -> None:
    """The worker's first event loads every pack: httpx comes with the first `http.request` only, and
    Powertools' event handler (response building) belongs to the api function."""
    code = (
        "from cmdgate.wiring import services\nfrom cmdgate.commands import default_registry\n"
        "services().executions\nassert default_registry.get('http.request')"
    )
    modules = _modules_after(function, code, COMMAND_PACKS="builtin,testing,example,aws,github")
    assert "cmdgate_commands.builtin.http_request" in modules
    assert not {m for m in modules if m.split(".")[0] == "httpx" or m.startswith("aws_lambda_powertools.event_handler")}
    ran = "from cmdgate_commands.builtin.http_request import transport\ntransport.http_client()"
    assert "httpx" in _modules_after(function, f"{code}\n{ran}", COMMAND_PACKS="builtin")


def test_the_api_function_loads_httpx_only_to_check_a_callback_url() -> None:
    """The SSRF guard parses with httpx's own parser; only a run with `Callback-Url` needs it."""
    assert "httpx" not in _modules_after("api", "import routes.commands")
    check = "from cmdgate.ssrf import check_url\ncheck_url('https://1.1.1.1/hook', [])"
    assert "httpx" in _modules_after("api", check)
