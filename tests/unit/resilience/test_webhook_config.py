"""WebhookSources: parsed once (a malformed value fails at start), event routes, params templates."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from cmdgate.config import Settings
from cmdgate.webhooks.config import TemplateError, parse_webhook_sources, render_params

CONTEXT = {
    "payload": {"repository": {"full_name": "o/r", "id": 7}, "commits": [{"id": "c1"}], "a/b": {"~x": True}},
    "delivery": {"id": "d-1", "event": "push", "source": "github"},
}


def test_sources_default_their_kind_and_principal_from_their_name() -> None:
    sources = parse_webhook_sources(json.dumps({"github": {}, "billing": {"kind": "stripe", "principal_id": "svc"}}))
    assert (sources["github"].kind, sources["github"].principal_id) == ("github", "webhook:github")
    assert (sources["billing"].kind, sources["billing"].principal_id) == ("stripe", "svc")
    assert parse_webhook_sources("  ") == {}


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '["github"]',
        '{"gitlab": {}}',  # no such kind
        '{"Bad Name": {"kind": "github"}}',
        '{"github": {"surprise": 1}}',
        '{"github": {"rate_limit": {"quota": "5", "window_s": 60}}}',
        '{"github": {"events": {"push": {"params": {}}}}}',  # no command
    ],
)
def test_a_malformed_value_fails_when_the_settings_are_read(value: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        Settings(webhook_sources=value)  # the environment gives text


def test_an_action_route_is_looked_up_before_its_event() -> None:
    events = {"issues": {"command": "a"}, "issues.opened": {"command": "b"}}
    source = parse_webhook_sources(json.dumps({"github": {"events": events}}))["github"]
    assert source.route("issues", "opened").command == "b"  # type: ignore[union-attr]
    assert source.route("issues", "closed").command == "a"  # type: ignore[union-attr]
    assert source.route("push", None) is None


def test_a_whole_placeholder_keeps_the_json_type_and_text_placeholders_interpolate() -> None:
    template = {
        "repo": "{{/payload/repository/full_name}}",
        "repo_id": "{{ /payload/repository/id }}",
        "first": "{{/payload/commits/0}}",
        "escaped": "{{/payload/a~1b/~0x}}",
        "label": "{{/delivery/source}}:{{/delivery/id}} #{{/payload/repository/id}}",
        "fixed": 3,
        "list": ["{{/delivery/event}}"],
    }
    assert render_params(template, CONTEXT) == {
        "repo": "o/r",
        "repo_id": 7,
        "first": {"id": "c1"},
        "escaped": True,
        "label": "github:d-1 #7",
        "fixed": 3,
        "list": ["push"],
    }


@pytest.mark.parametrize(
    "template",
    ["{{/payload/missing}}", "{{/payload/commits/5}}", "{{payload}}", "x {{/payload/commits}}"],
)
def test_a_placeholder_that_finds_nothing_is_an_error(template: str) -> None:
    with pytest.raises(TemplateError):
        render_params({"p": template}, CONTEXT)
