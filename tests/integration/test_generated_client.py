"""A client generated from docs/openapi.json with openapi-python-client works against the local stack.

It proves the description is complete enough: the generated functions take the bodies, the conditional
and idempotency headers as keyword arguments, and parse the answers into the documented models.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
PACKAGE = "cmdgate_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated package, imported from a temporary folder (offline: no metadata, no network)."""
    out = tmp_path_factory.mktemp("generated-client")
    generator = Path(sys.executable).parent / "openapi-python-client"
    command = [
        str(generator),
        "generate",
        "--path",
        str(DOCUMENT),
        "--meta",
        "none",
        "--output-path",
        str(out / PACKAGE),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False, cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    # The only warning allowed is the formatter's absence; anything else means a part was not generated.
    warnings = [line for line in result.stdout.splitlines() if line.strip().startswith(("Unable", "Cannot", "Invalid"))]
    assert warnings == [], result.stdout
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
def client(generated: Any, stack: Stack) -> Any:
    return generated.AuthenticatedClient(base_url=stack.url, token=stack.admin_key, timeout=60)


def test_a_generated_client_runs_a_command_once_per_idempotency_key(generated: Any, client: Any) -> None:
    run_command = importlib.import_module(f"{PACKAGE}.api.commands.run_command")
    models = importlib.import_module(f"{PACKAGE}.models")
    key = f"client-{uuid.uuid4().hex}"
    body = models.RunCommandBody.from_dict({"message": "from a generated client"})

    first = run_command.sync_detailed("echo", client=client, body=body, idempotency_key=key)
    second = run_command.sync_detailed("echo", client=client, body=body, idempotency_key=key)

    assert first.status_code == second.status_code == 200
    assert isinstance(first.parsed, models.RunResult)
    assert first.parsed.result == {"message": "from a generated client"}
    assert second.parsed.execution_id == first.parsed.execution_id
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.headers["RateLimit-Policy"]

    other = models.RunCommandBody.from_dict({"message": "another request"})
    reused = run_command.sync_detailed("echo", client=client, body=other, idempotency_key=key)
    assert reused.status_code == 422
    assert isinstance(reused.parsed, models.Problem)
    assert reused.parsed.code == "IDEMPOTENCY_KEY_REUSED"
    assert reused.parsed.type_ == "https://cmdgate.dev/errors#idempotency-key-reused"


def test_a_generated_client_creates_and_merge_patches_state(generated: Any, client: Any) -> None:
    put_state = importlib.import_module(f"{PACKAGE}.api.state.put_state")
    patch_state = importlib.import_module(f"{PACKAGE}.api.state.patch_state")
    get_state = importlib.import_module(f"{PACKAGE}.api.state.get_state")
    models = importlib.import_module(f"{PACKAGE}.models")
    key = f"client.{uuid.uuid4().hex[:12]}"
    create = models.PutStateIfNoneMatch("*")

    created = put_state.sync_detailed(key, client=client, body={"theme": "dark"}, if_none_match=create)
    assert created.status_code == 201, created.content
    assert (created.headers["ETag"], created.headers["State-Version"]) == ('"1"', "1")
    again = put_state.sync_detailed(key, client=client, body={"theme": "light"}, if_none_match=create)
    assert again.status_code == 412
    assert again.parsed.code == "PRECONDITION_FAILED"

    patched = patch_state.sync_detailed(key, client=client, body={"lang": "en"}, if_match=created.headers["ETag"])
    assert patched.status_code == 200, patched.content
    assert patched.parsed == {"theme": "dark", "lang": "en"}
    assert patched.headers["ETag"] == '"2"'
    stale = patch_state.sync_detailed(key, client=client, body={"lang": "fr"}, if_match=created.headers["ETag"])
    assert stale.status_code == 412

    read = get_state.sync_detailed(key, client=client)
    assert (read.status_code, read.parsed) == (200, {"theme": "dark", "lang": "en"})
    unchanged = get_state.sync_detailed(key, client=client, if_none_match=patched.headers["ETag"])
    assert unchanged.status_code == 304
