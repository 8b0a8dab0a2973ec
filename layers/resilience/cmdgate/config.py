"""Typed settings read once from the environment the template gives each function.

Standard library only: every function reads its settings on its first request, and pydantic's
BaseSettings cost each cold start more than the rest of the authorizer's code (the class's
validators are built at import). Each field is read from the upper-cased environment variable of
its name (keyword arguments override, as in tests), converted to its annotated type and checked
against its bounds; a malformed value is a `SettingsError` (a ValueError) when the settings are read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin, get_type_hints

from cmdgate.hosts import HostAllowlist

if TYPE_CHECKING:
    from cmdgate.webhooks.config import WebhookSource

# The template's AllowedValues for these parameters; a typo is a SettingsError when the settings are read.
GistMode = Literal["write_behind", "write_through"]
GistEncryption = Literal["kms", "plaintext"]
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


class SettingsError(ValueError):
    """A setting's value is malformed or out of its bounds."""


def Field(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    env: str | None = None,
) -> Any:
    """A field's default, the bounds its value must keep, and its variable when not its upper-cased name."""
    return dataclasses.field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "env": env})


def _convert(name: str, kind: Any, value: Any) -> Any:
    if get_origin(kind) is Literal:
        if value not in get_args(kind):
            raise SettingsError(f"{name}: {value!r} is not one of {list(get_args(kind))}")
        return value
    if kind is HostAllowlist:
        return HostAllowlist.parse(value) if isinstance(value, str | list | tuple) else value
    if kind is bool:
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in _TRUE | _FALSE:
            return value if isinstance(value, bool) else text in _TRUE
        raise SettingsError(f"{name}: {value!r} is not a boolean")
    if kind is int or kind is float:
        if isinstance(value, bool):
            raise SettingsError(f"{name}: {value!r} is not a number")
        try:
            number = kind(value.strip()) if isinstance(value, str) else kind(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: {value!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is int and not isinstance(value, str) and number != value:
            raise SettingsError(f"{name}: {value!r} is not an integer")
        return number
    if not isinstance(value, str):
        raise SettingsError(f"{name}: {value!r} is not text")
    return value


def _check_bounds(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    ge, gt, le = metadata.get("ge"), metadata.get("gt"), metadata.get("le")
    if ge is not None and value < ge:
        raise SettingsError(f"{name}: {value} is less than {ge}")
    if gt is not None and value <= gt:
        raise SettingsError(f"{name}: {value} is not greater than {gt}")
    if le is not None and value > le:
        raise SettingsError(f"{name}: {value} is greater than {le}")


@dataclasses.dataclass(frozen=True, init=False)
class Settings:
    """Every knob a function reads; names match template.yaml's Environment."""

    executions_table: str = ""
    keys_table: str = ""
    idempotency_table: str = ""
    control_table: str = ""
    state_table: str = ""
    executions_queue_url: str = ""
    executions_dlq_url: str = ""
    events_queue_url: str = ""
    events_dlq_url: str = ""
    alerts_topic_arn: str = ""
    state_sync_queue_url: str = ""
    state_sync_dlq_url: str = ""
    state_gist_mode: GistMode = "write_behind"
    state_retention_days: int = Field(7, ge=1)
    state_gist_encryption: GistEncryption = "kms"
    state_kms_key_id: str = ""
    github_token_secret_arn: str = ""
    gist_api_url: str = "https://api.github.com"
    # The github command pack (cmdgate_commands.github): its own token, and its API base (empty: gist_api_url).
    github_dispatch_token_secret_arn: str = ""
    github_api_url: str = ""
    # The aws command pack (cmdgate_commands.aws): the only resources it may use (the template grants these).
    aws_pack_state_machine_arn: str = ""
    aws_pack_event_bus_arn: str = ""
    aws_pack_queue_arn: str = ""
    gist_writes_per_minute: int = Field(80, ge=1)
    gist_writes_per_hour: int = Field(500, ge=1)
    gist_min_write_interval_s: float = Field(1.0, ge=0)  # GitHub: >= 1 s between writes
    # Shard gists (cmdgate.state.layout): files and bytes per gist, and the largest request body.
    state_keys_per_gist: int = Field(50, ge=1, le=250)  # GitHub lists at most 300 files of a gist
    state_bytes_per_gist: int = Field(5_000_000, ge=1024)
    state_gist_request_bytes: int = Field(4_000_000, ge=1024)
    state_gist_linger_s: float = Field(10.0, ge=0)  # a gist is written once its oldest unsynced write is this old
    stack_id: str = "cmdgate"  # names this deployment in its gists' manifests and descriptions
    max_state_body_bytes: int = Field(256 * 1024, ge=1)
    command_packs: str = "builtin"
    jwt_issuers: str = ""  # JSON list of cmdgate.auth.jwt_tokens.JwtIssuer
    # A local stack's loopback JWKS issuer is plain http; never set on AWS, where jwks_url must be https.
    jwks_allow_loopback_http: bool = False
    default_rate_limit_quota: int = Field(120, ge=1)  # for principals without their own policy
    default_rate_limit_window_s: int = Field(60, ge=1)
    adaptive_rate_limit: bool = True
    secrets_max_age_s: int = Field(300, ge=0)
    max_receive_count: int = Field(3, ge=1)
    # Async retries: the message comes back after full-jitter backoff, uniform in [0, min(cap, base * 2**n)).
    retry_base_s: float = Field(1.0, ge=0)
    retry_cap_s: float = Field(300.0, ge=0, le=43200)
    execution_ttl_days: int = Field(30, ge=1)
    # The audit trail (cmdgate.audit): how long its entries are kept and shown.
    audit_retention_days: int = Field(400, ge=1, le=3650)
    max_body_bytes: int = Field(64 * 1024, ge=1)
    max_result_bytes: int = Field(256 * 1024, ge=1)
    idempotency_ttl_s: int = Field(86400, ge=60)
    idempotency_retry_after_s: int = Field(2, ge=1)
    health_check_timeout_s: float = Field(2.0, gt=0)
    aws_region: str = "us-east-1"
    # HttpRequestAllowedHosts: comma-separated `host[:port]` / `*.suffix[:port]` (cmdgate.hosts).
    http_request_allowed_hosts: HostAllowlist = HostAllowlist()  # noqa: RUF009 - frozen, immutable
    # Alerts (cmdgate.alerts): one per cause per window; runbook links under this base (a repository URL).
    alert_window_s: int = Field(900, ge=1)
    runbook_base_url: str = ""
    # The healer (cmdgate.healer): thresholds of one pass, and when health calls it late.
    healer_max_redrives: int = Field(2, ge=0)
    healer_stuck_grace_s: float = Field(60.0, ge=0)
    healer_queued_after_s: float = Field(600.0, ge=0)
    healer_gist_drift_s: float = Field(300.0, ge=0)
    healer_batch: int = Field(100, ge=1, le=1000)
    # State integrity per pass: table items read and gists fetched (cmdgate.state.integrity).
    healer_integrity_items: int = Field(200, ge=1, le=10_000)
    healer_integrity_gists: int = Field(4, ge=1, le=100)
    healer_pass_budget_s: float = Field(45.0, gt=0)
    healer_late_s: float = Field(900.0, gt=0)  # 3 passes of the default rate(5 minutes)
    # The KMS key sealing commands' secret params in async execution records (cmdgate.executions.secrets).
    execution_secrets_key_id: str = ""
    # Completion callbacks (cmdgate.callbacks): their queue, retry bounds, and the KMS key sealing
    # principals' signing secrets (the template names the execution secrets key, under its own context).
    callbacks_queue_url: str = ""
    callback_secrets_key_id: str = ""
    callback_max_attempts: int = Field(8, ge=1, le=15)  # below the callbacks queue's maxReceiveCount (20)
    callback_retry_base_s: float = Field(1.0, gt=0)
    callback_retry_cap_s: float = Field(300.0, gt=0, le=43200)  # SQS visibility is at most 12 h
    callback_timeout_s: float = Field(5.0, gt=0, le=20)
    # Command events (cmdgate.stats, cmdgate.followups).
    follow_up_max_depth: int = Field(5, ge=0, le=50)
    stats_mirror_interval_s: int = Field(10, ge=1, le=900)  # SQS DelaySeconds is at most 900
    # Inbound webhooks (cmdgate.webhooks): WebhookSources (JSON), the secret holding their signing secrets,
    # and their own body limit: what a synchronous Lambda invoke can carry (API Gateway answers 413 beyond).
    # WebhookSources (JSON; only the api function has it), parsed into `webhook_sources` when read.
    webhook_sources_json: str = Field("", env="WEBHOOK_SOURCES")
    webhook_secrets_arn: str = ""
    webhook_max_body_bytes: int = Field(6 * 1024 * 1024, ge=1)

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> None:
        env = os.environ if environ is None else environ
        kinds = _field_types()
        unknown = set(overrides) - set(kinds) - {"webhook_sources"}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        if "webhook_sources" in overrides:  # as the environment gives it: text, parsed on first use
            overrides["webhook_sources_json"] = overrides.pop("webhook_sources")
        for spec in dataclasses.fields(self):
            name = spec.name
            if name in overrides:
                value = overrides[name]
            elif (spec.metadata.get("env") or name.upper()) in env:
                value = env[spec.metadata.get("env") or name.upper()]
            else:
                object.__setattr__(self, name, spec.default)
                continue
            converted = _convert(name, kinds[name], value)
            _check_bounds(name, converted, spec.metadata)
            object.__setattr__(self, name, converted)
        if self.webhook_sources_json.strip():
            _ = self.webhook_sources  # malformed sources fail here, when the settings are read

    @cached_property
    def webhook_sources(self) -> dict[str, WebhookSource]:
        """The webhook sources of `WebhookSources` (pydantic models: imported only when there are some)."""
        if not self.webhook_sources_json.strip():
            return {}
        from cmdgate.webhooks.config import parse_webhook_sources

        return parse_webhook_sources(self.webhook_sources_json)

    @property
    def enabled_packs(self) -> tuple[str, ...]:
        """Command packs to load: `builtin` always, others as configured."""
        names = [p.strip() for p in self.command_packs.split(",") if p.strip()]
        return tuple(dict.fromkeys(["builtin", *names]))


@lru_cache(maxsize=1)
def _field_types() -> dict[str, Any]:
    return get_type_hints(Settings, globalns={**globals(), "WebhookSource": Any})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this execution environment, read on first use."""
    return Settings()
