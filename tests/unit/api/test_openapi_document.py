"""docs/openapi.json is what the api function serves, and it says what the contract needs."""

from __future__ import annotations

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
    assert document["security"] == [{"bearer": []}]
    assert "422" not in document["paths"]["/v1/health"]["get"]["responses"]
