"""Commands' secret params never rest in plain text in an execution record.

A param is secret when its field is a pydantic `SecretStr` (at any depth of nested models), or
when the params model names it in `secret_paths()` (e.g. `http.request`'s Authorization, Cookie,
`*-Key` and `*-Token` headers). Paths are key paths into `params.model_dump(mode="json")`.

- Sync runs: the worker never reads the record's params, so secrets are redacted (`REDACTED`).
- Async runs: the worker needs them, so each secret is replaced by `SEALED` in `params` and all of
  them travel in one KMS envelope (`cmdgate.crypto.EnvelopeCipher`: one GenerateDataKey per run,
  one Decrypt per attempt) bound to the execution id as encryption context; an envelope copied to
  another record does not open. The envelope is dropped when the execution succeeds or fails.

Neither form is ever shown (`Execution.public_view` has no params) or logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:  # cryptography is imported only by functions that seal or open secrets
    from cmdgate.crypto import Codec, Envelope

REDACTED = "[redacted]"
SEALED = "[sealed]"
CONTEXT_KEY = "cmdgate:execution-id"

Path = tuple[str | int, ...]


class SecretsNotConfigured(RuntimeError):
    """An async run has secret params but no key to seal them with (EXECUTION_SECRETS_KEY_ID unset)."""


def secret_values(params: BaseModel) -> list[tuple[Path, str]]:
    """Every secret of `params` with its path in the JSON dump, revealed."""
    found = list(_secret_str_fields(params, ()))
    declared = getattr(params, "secret_paths", None)
    if callable(declared):
        dump = params.model_dump(mode="json")
        for path in declared():
            value = _get(dump, tuple(path))
            if isinstance(value, str):
                found.append((tuple(path), value))
    return found


def redacted(params: BaseModel) -> dict[str, Any]:
    """The params as a sync record keeps them: every secret replaced by `REDACTED`."""
    dump = params.model_dump(mode="json")
    for path, _ in secret_values(params):
        _set(dump, path, REDACTED)
    return dump


class ParamSecrets:
    """Seals an async run's secret params into a KMS envelope and opens them for the worker."""

    def __init__(self, cipher: Callable[[], Codec] | None) -> None:
        self._make_cipher = cipher

    @cached_property
    def _cipher(self) -> Codec:
        if self._make_cipher is None:
            raise SecretsNotConfigured("secret params need EXECUTION_SECRETS_KEY_ID to be stored for async runs")
        return self._make_cipher()

    def seal(self, execution_id: str, params: BaseModel) -> tuple[dict[str, Any], Envelope | None]:
        """The params with each secret replaced by `SEALED`, and the envelope of the secrets (None if none)."""
        dump = params.model_dump(mode="json")
        secrets = secret_values(params)
        if not secrets:
            return dump, None
        for path, _ in secrets:
            _set(dump, path, SEALED)
        plaintext = json.dumps([[list(path), value] for path, value in secrets], separators=(",", ":"))
        return dump, self._cipher.encrypt(plaintext.encode("utf-8"), {CONTEXT_KEY: execution_id})

    def open(self, execution_id: str, params: dict[str, Any], envelope: Envelope | None) -> dict[str, Any]:
        """The params as the caller sent them, secrets put back (a copy; `params` is not changed)."""
        if envelope is None:
            return params
        opened: dict[str, Any] = json.loads(json.dumps(params))
        for path, value in json.loads(self._cipher.decrypt(envelope, {CONTEXT_KEY: execution_id})):
            _set(opened, tuple(path), value)
        return opened


def _secret_str_fields(model: BaseModel, prefix: Path) -> Iterator[tuple[Path, str]]:
    by_alias = bool(model.model_config.get("serialize_by_alias"))
    for name, info in type(model).model_fields.items():
        key = info.serialization_alias or (info.alias if by_alias and info.alias else None) or name
        yield from _secrets_in(getattr(model, name), (*prefix, key))


def _secrets_in(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, SecretStr):
        yield path, value.get_secret_value()
    elif isinstance(value, BaseModel):
        yield from _secret_str_fields(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secrets_in(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _secrets_in(item, (*path, index))


def _get(data: Any, path: Path) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _set(data: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value
