"""Settings are typed: a mode the code does not know fails when the settings are read."""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

import pytest

from cmdgate.config import GistEncryption, GistMode, Settings, SettingsError


@pytest.mark.parametrize(("variable", "typo"), [("STATE_GIST_MODE", "write-through"), ("STATE_GIST_ENCRYPTION", "KMS")])
def test_a_mistyped_mode_fails_at_start(monkeypatch: pytest.MonkeyPatch, variable: str, typo: str) -> None:
    monkeypatch.setenv(variable, typo)
    with pytest.raises(SettingsError):
        Settings()


def test_the_template_modes_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_GIST_MODE", "write_through")
    monkeypatch.setenv("STATE_GIST_ENCRYPTION", "plaintext")
    settings = Settings()
    assert (settings.state_gist_mode, settings.state_gist_encryption) == ("write_through", "plaintext")
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert (fields["state_gist_mode"].default, fields["state_gist_encryption"].default) == ("write_behind", "kms")


def test_the_modes_are_the_templates_allowed_values(template_data: dict[str, Any]) -> None:
    parameters = template_data["Parameters"]
    assert parameters["StateGistMode"]["AllowedValues"] == list(get_args(GistMode))
    assert parameters["StateGistEncryption"]["AllowedValues"] == list(get_args(GistEncryption))
