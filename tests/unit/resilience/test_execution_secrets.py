"""Secret params (SecretStr fields, declared paths) never rest in plain text in execution records."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cmdgate.auth.permissions import Principal
from cmdgate.commands import CommandContext, CommandRegistry, command
from cmdgate.crypto import DecryptionFailed, EnvelopeCipher
from cmdgate.executions import ExecutionService, ExecutionStore
from cmdgate.executions.secrets import REDACTED, SEALED, ParamSecrets, SecretsNotConfigured, redacted, secret_values
from tests.unit.resilience.test_execution_service import RecordingQueue

ALICE = Principal("key:alice", ("commands.run:*",))
TOKEN = "tok-3f9c2a-very-secret"


class Inner(BaseModel):
    password: SecretStr


class LoginParams(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    user: str
    api_token: SecretStr = Field(alias="token")
    nested: Inner | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    def secret_paths(self) -> Iterator[tuple[str, ...]]:
        yield from (("headers", name) for name in self.headers if name.lower() == "authorization")


def params() -> LoginParams:
    return LoginParams.model_validate(
        {"user": "ada", "token": TOKEN, "nested": {"password": "pw-" + TOKEN}, "headers": {"Authorization": TOKEN}}
    )


def test_secret_values_are_found_by_type_and_by_declaration() -> None:
    assert sorted(secret_values(params())) == [
        (("headers", "Authorization"), TOKEN),
        (("nested", "password"), "pw-" + TOKEN),
        (("token",), TOKEN),
    ]


def test_redaction_replaces_every_secret() -> None:
    dump = redacted(params())
    assert TOKEN not in json.dumps(dump)
    assert dump == {
        "user": "ada",
        "token": REDACTED,
        "nested": {"password": REDACTED},
        "headers": {"Authorization": REDACTED},
    }


@pytest.fixture
def cipher(session: Any) -> EnvelopeCipher:
    kms = session.client("kms")
    return EnvelopeCipher(kms, kms.create_key(Description="execution secrets")["KeyMetadata"]["KeyId"])


def test_sealed_secrets_open_only_for_their_execution(cipher: EnvelopeCipher) -> None:
    secrets = ParamSecrets(lambda: cipher)
    stored, envelope = secrets.seal("e1", params())
    assert envelope is not None
    assert TOKEN not in json.dumps([stored, envelope])
    assert stored["token"] == SEALED and stored["headers"]["Authorization"] == SEALED
    opened = secrets.open("e1", stored, envelope)
    assert LoginParams.model_validate(opened) == params()
    assert stored["token"] == SEALED  # the record's copy is not changed
    with pytest.raises(DecryptionFailed):
        secrets.open("e2", stored, envelope)  # copied to another record


def test_params_without_secrets_need_no_key() -> None:
    class Plain(BaseModel):
        name: str = "x"

    assert ParamSecrets(None).seal("e1", Plain()) == ({"name": "x"}, None)
    with pytest.raises(SecretsNotConfigured):
        ParamSecrets(None).seal("e1", params())


@pytest.fixture
def service(table_like: Callable[[str], Any], cipher: EnvelopeCipher) -> tuple[ExecutionService, Any, list[Any]]:
    registry = CommandRegistry()
    seen: list[Any] = []

    @command("login", description="Uses a credential.", params=LoginParams, registry=registry)
    def login(p: LoginParams, context: CommandContext) -> dict[str, str]:
        seen.append((p.api_token.get_secret_value(), p.headers["Authorization"]))
        return {"user": p.user}

    table = table_like("ExecutionsTable")
    queue = RecordingQueue()
    executions = ExecutionService(ExecutionStore(table), queue, None, registry, secrets=ParamSecrets(lambda: cipher))
    return executions, table, seen


BODY = json.dumps({"user": "ada", "token": TOKEN, "headers": {"Authorization": f"Bearer {TOKEN}"}})


def test_a_sync_run_uses_the_secret_and_stores_it_redacted(service: tuple[ExecutionService, Any, list[Any]]) -> None:
    executions, table, seen = service
    submission = executions.submit(ALICE, "login", BODY, prefer_async=False)
    assert submission.status_code == 200
    assert seen == [(TOKEN, f"Bearer {TOKEN}")]
    item = table.get_item(Key={"execution_id": submission.body["execution_id"]})["Item"]
    assert TOKEN not in json.dumps(item, default=str)
    assert "secrets_json" not in item
    assert json.loads(item["params_json"])["token"] == REDACTED
    assert TOKEN not in json.dumps(executions.get(ALICE, submission.body["execution_id"]).public_view())


def test_an_async_run_stores_the_secret_sealed_and_the_worker_opens_it(
    service: tuple[ExecutionService, Any, list[Any]],
) -> None:
    executions, table, seen = service
    submission = executions.submit(ALICE, "login", BODY, prefer_async=True)
    execution_id = submission.body["execution_id"]
    queued = table.get_item(Key={"execution_id": execution_id})["Item"]
    assert TOKEN not in json.dumps(queued, default=str)
    assert json.loads(queued["secrets_json"])["alg"] == "AES-256-GCM"
    executions.process_message(json.dumps({"execution_id": execution_id}), 1)
    assert seen == [(TOKEN, f"Bearer {TOKEN}")]
    finished = table.get_item(Key={"execution_id": execution_id})["Item"]
    assert finished["status"] == "succeeded"
    assert "secrets_json" not in finished  # not needed any more
    assert TOKEN not in json.dumps(finished, default=str)
