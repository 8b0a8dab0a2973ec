"""docs/openapi.json is what the api function serves, and it says what the contract needs."""

from __future__ import annotations

from typing import Any

from cmdgate_local.openapi_export import DOCUMENT, generate, render


def test_checked_in_description_is_current() -> None:
    assert DOCUMENT.read_text() == render(generate()), "run `make openapi` and commit docs/openapi.json"


def test_description_documents_problems_auth_and_idempotency() -> None:
    document = generate()
    run = document["paths"]["/v1/commands/{name}"]["post"]
    assert {"200", "202", "400", "401", "403", "404", "409", "422", "429", "503", "504"} <= set(run["responses"])
    assert "application/problem+json" in run["responses"]["409"]["content"]
    assert {p["name"].lower() for p in run["parameters"]} >= {"name", "idempotency-key", "prefer"}
    assert run["x-idempotency-retention-seconds"] == 86400
    assert document["paths"]["/v1/health"]["get"]["security"] == []
    assert document["paths"]["/v1/webhooks/{source}"]["post"]["security"] == []  # the signature is the credential
    assert document["security"] == [{"bearer": []}]
    assert "422" not in document["paths"]["/v1/health"]["get"]["responses"]


OPERATION_IDS = {
    "runCommand",
    "listCommands",
    "getExecution",
    "cancelExecution",
    "getState",
    "putState",
    "patchState",
    "deleteState",
    "getStateHistory",
    "restoreState",
    "createKey",
    "listKeys",
    "listAudit",
    "revokeKey",
    "listDeadLetters",
    "redriveDeadLetters",
    "rotateSigningSecret",
    "recoverState",
    "getHealth",
    "getAdminHealth",
    "receiveWebhook",
}


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for ops in document["paths"].values() for op in ops.values()}


def _parameters(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["in"], p["name"].lower()): p for p in operation.get("parameters", [])}


def test_every_operation_has_its_short_id() -> None:
    assert set(_operations(generate())) == OPERATION_IDS


def test_state_writes_declare_their_bodies_and_conditional_headers() -> None:
    ops = _operations(generate())
    put, patch, delete = ops["putState"], ops["patchState"], ops["deleteState"]
    assert put["requestBody"]["required"] is True
    assert put["requestBody"]["content"] == {"application/json": {"schema": {}}}  # any JSON value
    assert set(patch["requestBody"]["content"]) == {"application/merge-patch+json"}
    assert {("header", "if-match"), ("header", "if-none-match")} <= set(_parameters(put))
    assert _parameters(put)[("header", "if-none-match")]["schema"]["enum"] == ["*"]
    assert ("header", "if-match") in _parameters(patch)
    assert ("header", "if-match") in _parameters(delete)
    key = _parameters(put)[("path", "key")]["schema"]
    assert key["pattern"] == "^[a-z0-9][a-z0-9._:-]{0,127}$"
    for status in ("412", "413", "428", "415"):
        assert status in patch["responses"]
    assert "content" not in delete["responses"]["204"]  # 204 has no content
    assert "content" not in ops["getState"]["responses"]["304"]
    assert set(put["responses"]["201"]["headers"]) >= {"ETag", "State-Version", "Last-Modified", "Gist-Synced-Version"}


def test_run_declares_its_body_headers_and_answers() -> None:
    run = _operations(generate())["runCommand"]
    assert run["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert run["requestBody"]["required"] is False
    params = _parameters(run)
    assert params[("path", "name")]["schema"]["pattern"]
    assert "pattern" in params[("header", "idempotency-key")]["schema"]
    callback = params[("header", "callback-url")]
    assert callback["schema"]["maxLength"] == 2048 and "webhook-signature" in callback["description"]
    assert run["responses"]["202"]["headers"]["Location"]["required"] is True
    assert "Idempotent-Replayed" in run["responses"]["200"]["headers"]
    assert run["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert run["responses"]["200"]["headers"]["RateLimit"]["required"] is True
    assert run["responses"]["200"]["headers"]["X-Request-Id"]["required"] is True


def test_lists_declare_paging_and_the_state_read_its_version() -> None:
    ops = _operations(generate())
    for operation_id in ("listCommands", "listKeys", "listDeadLetters", "getStateHistory"):
        params = _parameters(ops[operation_id])
        assert params[("query", "limit")]["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "title": "Limit",
        }
        assert ("query", "cursor") in params
    assert ("query", "version") in _parameters(ops["getState"])
    assert _parameters(ops["getExecution"])[("path", "execution_id")]["schema"]["pattern"] == "^[A-Za-z0-9]{1,64}$"
    assert _parameters(ops["revokeKey"])[("path", "key_id")]["schema"]["pattern"] == "^[A-Za-z0-9]{1,64}$"


def test_only_problem_answers_are_documented_for_errors() -> None:
    document = generate()
    for operation in _operations(document).values():
        for status, answer in operation["responses"].items():
            if int(status) >= 400 and operation["operationId"] not in ("getHealth", "getAdminHealth"):
                assert set(answer["content"]) == {"application/problem+json"}, (operation["operationId"], status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert _operations(document)["getHealth"]["responses"]["503"]["content"]["application/json"]  # the report
