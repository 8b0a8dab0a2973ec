"""No secret in any log line this run's stacks wrote: every function log and each stack's own output.

Named to run after every other integration module (test_zz_least_privilege included): every stack
the suite starts lives under the run's basetemp (the session stack, the module stacks, the healer's
and `make invoke`'s logs), so this scan reads all of them. It first sends each kind of secret through
the session stack itself (a new API key, a JWT, a signing secret, tokens that are refused), so it
also means something when run alone, as `make audit` does. The secrets looked for are described in
audit/secrets_in_logs.py; the only line allowed to hold one is `make run`'s admin-key notice, which
no test stack prints (they are given their admin key).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit.secrets_in_logs import ScanResult, scan
from cmdgate_local.launcher import STACK_LOG
from tests.integration.conftest import ADMIN_KEY, Stack, wait_for
from tests.integration.test_http_request import TOKEN as HTTP_REQUEST_TOKEN
from tests.security.test_jwt_auth import SECRET as JWT_SECRET
from tests.security.test_jwt_auth import jwt_secret, token  # noqa: F401 - jwt_secret is a fixture

pytestmark = pytest.mark.integration
FAKE_GITHUB_TOKEN = "ghp_" + "Zz09" * 9  # shaped like a classic personal access token


def run_log_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's stacks keep their logs: the basetemp (the parent of a worker's under xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def drive_secret_paths(stack: Stack) -> tuple[str, tuple[str, ...]]:
    """Send each kind of secret through the stack once; the new key's id and the secrets made."""
    created = stack.admin.post("/v1/admin/keys", json={"name": "log-scan", "permissions": ["commands.run:echo"]})
    assert created.status_code == 201, created.text
    key_id, api_key = created.json()["key_id"], created.json()["api_key"]
    assert stack.client(api_key).post("/v1/commands/echo", json={"message": "scan"}).status_code == 200
    rotated = stack.admin.post("/v1/admin/signing-secrets", json={"principal_id": f"key:{key_id}"})
    assert rotated.status_code == 201, rotated.text
    assert stack.client(token(JWT_SECRET)).post("/v1/commands/echo", json={}).status_code == 200
    wrongly_signed = token("not-the-issuer-secret-but-as-long-as-it")
    for refused in (api_key[:-4] + "AAAA", wrongly_signed, FAKE_GITHUB_TOKEN, rotated.json()["secret"]):
        assert stack.client(refused).post("/v1/commands/echo", json={}).status_code == 401
    assert stack.admin.delete(f"/v1/admin/keys/{key_id}").status_code == 204
    return key_id, (api_key, rotated.json()["secret"])


@pytest.mark.usefixtures("jwt_secret")
def test_no_log_line_of_this_run_holds_a_secret(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    key_id, made = drive_secret_paths(stack)
    root = run_log_root(tmp_path_factory)
    known = (ADMIN_KEY, JWT_SECRET, HTTP_REQUEST_TOKEN, *made)

    def scanned_with_this_test_s_requests() -> ScanResult | None:
        # The authorizer logs the principal of each request it lets in: once the new key's id is
        # there, the scan has read the lines of the requests above (the logs are written as they go).
        result = scan([root], known)
        authorizer_logs = [p for p in result.files if p.name.startswith("AuthorizerFunction-")]
        seen = any(f"key:{key_id}" in p.read_text(errors="replace") for p in authorizer_logs)
        return result if seen else None

    result = wait_for(scanned_with_this_test_s_requests, timeout_s=30)
    names = {path.name.rsplit("-", 1)[0] for path in result.files}
    assert {"AuthorizerFunction", "ApiFunction", "WorkerFunction"} <= names, names
    assert any(path.name == STACK_LOG for path in result.files), "the stack's own output was not kept"
    print(f"\nlog scan: {len(result.hits)} secrets in {result.lines} lines of {len(result.files)} log files")
    assert not result.hits, "secrets in logs:\n" + "\n".join(f"  {hit}" for hit in result.hits)
