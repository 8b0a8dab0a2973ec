"""Which webhook sources exist, who their runs act as, and which command each event type starts.

`WebhookSources` (a template parameter, JSON) is read once into `Settings.webhook_sources`; a malformed
value fails the api function at start, not at the first delivery:

    {"github": {"kind": "github",
                "principal_id": "webhook:github",
                "permissions": ["commands.run:deploy"],
                "rate_limit": {"quota": 120, "window_s": 60},
                "events": {"push": {"command": "deploy", "params": {"repo": "{{/payload/repository/full_name}}"}},
                           "issues.opened": {"command": "triage", "params": {"number": "{{/payload/issue/number}}"}}}}}

The key (`github`) is the `{source}` of `POST /v1/webhooks/{source}`; `kind` (github, stripe,
standard; default: the key) says how its deliveries are signed. The secrets are not here: they are
in the Secrets Manager secret `WebhookSecretsArn`, a JSON object from source to one secret or a list
(a rotation: every listed secret is accepted).

An event type is GitHub's `X-GitHub-Event` (and `<event>.<action>` when the payload has an `action`,
looked up first), Stripe's and Standard Webhooks' payload `type`. Params templates: a string that is
exactly `{{<JSON pointer>}}` becomes the value there (any JSON type) in `{"payload": <body>,
"delivery": {"id", "event", "source"}}`; `{{...}}` inside a longer string is replaced by the value as
text (a scalar); a pointer that finds nothing refuses the delivery's run (recorded, never guessed).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

Kind = Literal["github", "stripe", "standard"]
SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class RateLimitSpec(BaseModel):
    """A source's rate limit: `quota` deliveries per `window_s` seconds (a GCRA bucket, as callers have)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    quota: int = Field(ge=1)
    window_s: int = Field(ge=1)


class EventRoute(BaseModel):
    """The command an event type starts, and its params template."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    command: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class WebhookSource(BaseModel):
    """One source: how it signs, whose permissions its runs have, how fast it may deliver, what runs."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    name: str = Field(pattern=SOURCE_PATTERN)
    kind: Kind
    principal_id: str = Field(default="", max_length=256)
    permissions: tuple[str, ...] = ()
    rate_limit: RateLimitSpec = RateLimitSpec(quota=120, window_s=60)
    events: dict[str, EventRoute] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            name = data.get("name")
            data = {"kind": name, "principal_id": f"webhook:{name}", **data}
        return data

    def route(self, event_type: str, action: str | None) -> EventRoute | None:
        """The route of `<event>.<action>` if configured, else of `<event>`; None: unmapped."""
        if action is not None and f"{event_type}.{action}" in self.events:
            return self.events[f"{event_type}.{action}"]
        return self.events.get(event_type)


_SOURCES = TypeAdapter(dict[str, dict[str, Any]])


def parse_webhook_sources(text: str) -> dict[str, WebhookSource]:
    """The sources of a `WebhookSources` value ("" is none); raises ValueError when malformed."""
    if not text.strip():
        return {}
    raw = _SOURCES.validate_python(json.loads(text))
    return {name: WebhookSource.model_validate({**spec, "name": name}) for name, spec in raw.items()}


class TemplateError(ValueError):
    """A params template names something the delivery does not have."""


def render_params(template: Any, context: dict[str, Any]) -> Any:
    """The params for one delivery: `template` with each `{{pointer}}` filled from `context`."""
    if isinstance(template, dict):
        return {key: render_params(value, context) for key, value in template.items()}
    if isinstance(template, list):
        return [render_params(value, context) for value in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return resolve_pointer(context, whole.group(1))

    def text(found: re.Match[str]) -> str:
        value = resolve_pointer(context, found.group(1))
        if isinstance(value, dict | list) or value is None:
            raise TemplateError(f"{found.group(1)} is not a scalar")
        return json.dumps(value) if isinstance(value, bool) else str(value)

    return _PLACEHOLDER.sub(text, template)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 JSON pointer; TemplateError if there is none."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise TemplateError(f"{pointer!r} is not a JSON pointer")
    current = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            raise TemplateError(f"{pointer} finds nothing")
    return current
