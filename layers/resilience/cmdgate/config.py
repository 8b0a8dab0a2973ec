"""Typed settings read once from the environment the template gives each function."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cmdgate.hosts import HostAllowlist
from cmdgate.webhooks.config import WebhookSource, parse_webhook_sources

# The template's AllowedValues for these parameters; a typo is a ValidationError when the settings are read.
GistMode = Literal["write_behind", "write_through"]
GistEncryption = Literal["kms", "plaintext"]


class Settings(BaseSettings):
    """Every knob a function reads; names match template.yaml's Environment."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, arbitrary_types_allowed=True)

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
    state_retention_days: int = Field(default=7, ge=1)
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
    gist_writes_per_minute: int = Field(default=80, ge=1)
    gist_writes_per_hour: int = Field(default=500, ge=1)
    gist_min_write_interval_s: float = Field(default=1.0, ge=0)  # GitHub: >= 1 s between writes
    # Shard gists (cmdgate.state.layout): files and bytes per gist, and the largest request body.
    state_keys_per_gist: int = Field(default=50, ge=1, le=250)  # GitHub lists at most 300 files of a gist
    state_bytes_per_gist: int = Field(default=5_000_000, ge=1024)
    state_gist_request_bytes: int = Field(default=4_000_000, ge=1024)
    state_gist_linger_s: float = Field(
        default=10.0, ge=0
    )  # a gist is written once its oldest unsynced write is this old
    stack_id: str = "cmdgate"  # names this deployment in its gists' manifests and descriptions
    max_state_body_bytes: int = Field(default=256 * 1024, ge=1)
    command_packs: str = "builtin"
    jwt_issuers: str = ""  # JSON list of cmdgate.auth.jwt_tokens.JwtIssuer
    # A local stack's loopback JWKS issuer is plain http; never set on AWS, where jwks_url must be https.
    jwks_allow_loopback_http: bool = False
    default_rate_limit_quota: int = Field(default=120, ge=1)  # for principals without their own policy
    default_rate_limit_window_s: int = Field(default=60, ge=1)
    adaptive_rate_limit: bool = True
    secrets_max_age_s: int = Field(default=300, ge=0)
    max_receive_count: int = Field(default=3, ge=1)
    # Async retries: the message comes back after full-jitter backoff, uniform in [0, min(cap, base * 2**n)).
    retry_base_s: float = Field(default=1.0, ge=0)
    retry_cap_s: float = Field(default=300.0, ge=0, le=43200)
    execution_ttl_days: int = Field(default=30, ge=1)
    # The audit trail (cmdgate.audit): how long its entries are kept and shown.
    audit_retention_days: int = Field(default=400, ge=1, le=3650)
    max_body_bytes: int = Field(default=64 * 1024, ge=1)
    max_result_bytes: int = Field(default=256 * 1024, ge=1)
    idempotency_ttl_s: int = Field(default=86400, ge=60)
    idempotency_retry_after_s: int = Field(default=2, ge=1)
    health_check_timeout_s: float = Field(default=2.0, gt=0)
    aws_region: str = "us-east-1"
    # HttpRequestAllowedHosts: comma-separated `host[:port]` / `*.suffix[:port]` (cmdgate.hosts).
    http_request_allowed_hosts: Annotated[HostAllowlist, NoDecode] = HostAllowlist()
    # Alerts (cmdgate.alerts): one per cause per window; runbook links under this base (a repository URL).
    alert_window_s: int = Field(default=900, ge=1)
    runbook_base_url: str = ""
    # The healer (cmdgate.healer): thresholds of one pass, and when health calls it late.
    healer_max_redrives: int = Field(default=2, ge=0)
    healer_stuck_grace_s: float = Field(default=60.0, ge=0)
    healer_queued_after_s: float = Field(default=600.0, ge=0)
    healer_gist_drift_s: float = Field(default=300.0, ge=0)
    healer_batch: int = Field(default=100, ge=1, le=1000)
    # State integrity per pass: table items read and gists fetched (cmdgate.state.integrity).
    healer_integrity_items: int = Field(default=200, ge=1, le=10_000)
    healer_integrity_gists: int = Field(default=4, ge=1, le=100)
    healer_pass_budget_s: float = Field(default=45.0, gt=0)
    healer_late_s: float = Field(default=900.0, gt=0)  # 3 passes of the default rate(5 minutes)
    # The KMS key sealing commands' secret params in async execution records (cmdgate.executions.secrets).
    execution_secrets_key_id: str = ""
    # Completion callbacks (cmdgate.callbacks): their queue, retry bounds, and the KMS key sealing
    # principals' signing secrets (the template names the execution secrets key, under its own context).
    callbacks_queue_url: str = ""
    callback_secrets_key_id: str = ""
    callback_max_attempts: int = Field(default=8, ge=1, le=15)  # below the callbacks queue's maxReceiveCount (20)
    callback_retry_base_s: float = Field(default=1.0, gt=0)
    callback_retry_cap_s: float = Field(default=300.0, gt=0, le=43200)  # SQS visibility is at most 12 h
    callback_timeout_s: float = Field(default=5.0, gt=0, le=20)
    # Command events (cmdgate.stats, cmdgate.followups).
    follow_up_max_depth: int = Field(default=5, ge=0, le=50)
    stats_mirror_interval_s: int = Field(default=10, ge=1, le=900)  # SQS DelaySeconds is at most 900
    # Inbound webhooks (cmdgate.webhooks): WebhookSources (JSON), the secret holding their signing secrets,
    # and their own body limit: what a synchronous Lambda invoke can carry (API Gateway answers 413 beyond).
    webhook_sources: Annotated[dict[str, WebhookSource], NoDecode] = Field(default_factory=dict)
    webhook_secrets_arn: str = ""
    webhook_max_body_bytes: int = Field(default=6 * 1024 * 1024, ge=1)

    @field_validator("http_request_allowed_hosts", mode="before")
    @classmethod
    def _parse_allowed_hosts(cls, value: Any) -> Any:
        return HostAllowlist.parse(value) if isinstance(value, str | list | tuple) else value

    @field_validator("webhook_sources", mode="before")
    @classmethod
    def _parse_webhook_sources(cls, value: Any) -> Any:
        return parse_webhook_sources(value) if isinstance(value, str) else value

    @property
    def enabled_packs(self) -> tuple[str, ...]:
        """Command packs to load: `builtin` always, others as configured."""
        names = [p.strip() for p in self.command_packs.split(",") if p.strip()]
        return tuple(dict.fromkeys(["builtin", *names]))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this execution environment, read on first use."""
    return Settings()
