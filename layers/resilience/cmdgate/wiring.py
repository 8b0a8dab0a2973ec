"""The composition root: `build(settings, clients) -> Services`, once per execution environment.

Only the functions' handlers reach it (through `services()`); the layer's modules receive what
they need as arguments, and commands through their `CommandContext` (`Services` is the
`CommandServices` lent to them). Every part is built on first use, with its imports inside the
builder, so each function pays at cold start only for what it uses (the authorizer needs API
keys, not Powertools idempotency, the Gist client or cryptography).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from cmdgate import aws
from cmdgate.config import Settings, get_settings
from cmdgate.health import CheckFailed

if TYPE_CHECKING:
    from cmdgate.alerts import Alerts
    from cmdgate.audit import AuditLog, AuditStamp, AuditTrail
    from cmdgate.auth import ApiKeyStore
    from cmdgate.auth.jwt_tokens import JwtVerifier
    from cmdgate.breaker import BreakerStore, CircuitBreaker
    from cmdgate.callbacks import CallbackDelivery, SigningSecrets
    from cmdgate.crypto import Codec
    from cmdgate.executions import ExecutionService, MessageQueue
    from cmdgate.followups import FollowUps
    from cmdgate.gist import GistClient
    from cmdgate.healer import Healer
    from cmdgate.health import Check
    from cmdgate.idempotency import IdempotentRequests
    from cmdgate.ratelimit.requests import RequestRateLimiter
    from cmdgate.state.integrity import StateIntegrity
    from cmdgate.state.layout import FileNamer
    from cmdgate.state.names import FileNameKey
    from cmdgate.state.recovery import StateRecovery
    from cmdgate.state.service import FifoSyncQueue, StateService
    from cmdgate.state.shards import ShardDirectory
    from cmdgate.state.store import StateStore
    from cmdgate.state.sync import GistSync
    from cmdgate.stats import CommandStats, StatsMirror
    from cmdgate.webhooks.receiver import WebhookReceiver

GIST_BREAKER = "gist"


class AwsClients:
    """boto3 clients and tables (counted, reused); tests pass another object with these two methods."""

    def client(self, service: str) -> Any:
        """A low-level client for `service`."""
        return aws.client(service)

    def table(self, name: str) -> Any:
        """A DynamoDB Table resource."""
        return aws.dynamodb_table(name)


class Services:
    """Every service of one execution environment, each built on first use."""

    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self._settings = settings
        self.clients = clients
        self._name_key: FileNameKey | None = None

    @property
    def settings(self) -> Settings:
        """The typed settings this environment was built from."""
        return self._settings

    # -- auth ---------------------------------------------------------------

    @cached_property
    def api_keys(self) -> ApiKeyStore:
        """API keys in the keys table."""
        from cmdgate.auth import ApiKeyStore

        name = self.settings.keys_table
        # The authorizer only reads keys: through the client, the Table resource built only for admin actions.
        reader = aws.item_reader(self.clients.client("dynamodb"), name, "key_hash")
        return ApiKeyStore(table_factory=lambda: self.clients.table(name), reader=reader)

    @cached_property
    def jwt_verifier(self) -> JwtVerifier | None:
        """The JWT verifier for the configured issuers, or None when none are (imports PyJWT only then)."""
        if not self.settings.jwt_issuers.strip():
            return None
        import httpx

        from cmdgate.auth.jwt_tokens import JwtVerifier, parse_jwt_issuers

        http = httpx.Client(timeout=httpx.Timeout(3.0, connect=2.0))
        issuers = parse_jwt_issuers(
            self.settings.jwt_issuers, allow_loopback_http=self.settings.jwks_allow_loopback_http
        )
        return JwtVerifier(issuers, http=http, secret_provider=self.secret)

    def secret(self, arn: str) -> str:
        """A Secrets Manager secret through Powertools Parameters (cached for `secrets_max_age_s`)."""
        from aws_lambda_powertools.utilities.parameters import get_secret

        return str(get_secret(arn, max_age=self.settings.secrets_max_age_s))

    # -- commands and executions ---------------------------------------------

    @cached_property
    def executions(self) -> ExecutionService:
        """The execution service with the configured command packs loaded."""
        from cmdgate.commands import default_registry, load_packs
        from cmdgate.executions import ExecutionService, ExecutionStore
        from cmdgate.executions.secrets import ParamSecrets

        settings = self.settings
        load_packs(settings.enabled_packs)
        return ExecutionService(
            ExecutionStore(self.clients.table(settings.executions_table)),
            self._queue(settings.executions_queue_url),
            self.events_queue,
            default_registry,
            services=self,
            secrets=ParamSecrets(self._execution_secrets_cipher if settings.execution_secrets_key_id else None),
            max_result_bytes=settings.max_result_bytes,
            max_receive_count=settings.max_receive_count,
            execution_ttl_s=settings.execution_ttl_days * 86400,
            audit_retention_s=settings.audit_retention_days * 86400,
            retry_base_s=settings.retry_base_s,
            retry_cap_s=settings.retry_cap_s,
            holder=os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
            alert=self.alerts.send if settings.alerts_topic_arn else None,
        )

    def _execution_secrets_cipher(self) -> Codec:
        """The KMS envelope cipher for async runs' secret params (imports cryptography only when used)."""
        from cmdgate.crypto import EnvelopeCipher

        # One envelope per execution, each under its own context: a data key is never reused.
        return EnvelopeCipher(self.clients.client("kms"), self.settings.execution_secrets_key_id, data_key_reuse_s=0)

    @cached_property
    def idempotent_requests(self) -> IdempotentRequests:
        """Idempotency-Key handling backed by the idempotency table (Powertools schema)."""
        from cmdgate.idempotency import IdempotentRequests, ReleasingDynamoDBPersistenceLayer

        settings = self.settings
        persistence = ReleasingDynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=self.clients.client("dynamodb")
        )
        return IdempotentRequests(persistence, expires_after_s=settings.idempotency_ttl_s)

    @cached_property
    def rate_limiter(self) -> RequestRateLimiter:
        """A token bucket per principal (plus commands' own limits) and adaptive tightening."""
        from cmdgate.ratelimit import AdaptiveLimiter, DynamoDBRateLimitStore, RateLimitPolicy, TokenBucket
        from cmdgate.ratelimit.requests import RequestRateLimiter

        settings = self.settings
        store = DynamoDBRateLimitStore(self.clients.client("dynamodb"), settings.control_table)
        return RequestRateLimiter(
            TokenBucket(store),
            AdaptiveLimiter(store) if settings.adaptive_rate_limit else None,
            RateLimitPolicy(settings.default_rate_limit_quota, settings.default_rate_limit_window_s),
        )

    @cached_property
    def command_stats(self) -> CommandStats:
        """Per-command counters in the control table."""
        from cmdgate.stats import CommandStats

        return CommandStats(self.clients.client("dynamodb"), self.settings.control_table)

    @cached_property
    def stats_mirror(self) -> StatsMirror:
        """The coalesced mirror of the stats into state key `system.command-stats`."""
        from cmdgate.state.service import Preconditions
        from cmdgate.stats import MIRROR_KEY, StatsMirror

        settings = self.settings
        sqs = self.clients.client("sqs")

        def schedule(delay_s: int) -> None:
            sqs.send_message(
                QueueUrl=settings.events_queue_url,
                MessageBody='{"type":"stats.mirror"}',
                DelaySeconds=delay_s,
            )

        def write(value: dict[str, Any]) -> None:
            # cmdgate itself writes `system.*` (callers get 403 from cmdgate.authz). Always write-behind,
            # whatever StateGistMode says: the mirror is coalesced so that it spends little gist budget.
            from cmdgate.state.service import StateService

            state = StateService(self._state_store, self._state_sync_queue, self.events_queue)
            state.ensure(MIRROR_KEY, {})
            state.put(MIRROR_KEY, value, Preconditions(if_match_any=True))

        return StatsMirror(
            self.clients.client("dynamodb"),
            settings.control_table,
            self.command_stats,
            schedule,
            write,
            interval_s=settings.stats_mirror_interval_s,
        )

    @cached_property
    def follow_ups(self) -> FollowUps:
        """Queues the follow-ups commands declare (the registry is the execution service's)."""
        from cmdgate.commands import default_registry
        from cmdgate.followups import FollowUps

        executions = self.executions  # loads the command packs
        return FollowUps(default_registry, executions, self.settings.follow_up_max_depth)

    @cached_property
    def signing_secrets(self) -> SigningSecrets:
        """Principals' callback signing secrets, sealed with KMS in the control table."""
        from cmdgate.callbacks import SigningSecrets
        from cmdgate.crypto import EnvelopeCipher

        settings = self.settings

        def cipher() -> Codec:
            key_id = settings.callback_secrets_key_id or settings.execution_secrets_key_id
            return EnvelopeCipher(self.clients.client("kms"), key_id, data_key_reuse_s=0)

        return SigningSecrets(self.clients.client("dynamodb"), settings.control_table, _once(cipher))

    @cached_property
    def callbacks(self) -> CallbackDelivery:
        """Hands finished runs' callbacks to their queue and delivers them (the event processor)."""
        import httpx

        from cmdgate.callbacks import CallbackDelivery, CallbackPolicy, CallbackStore

        settings = self.settings
        sqs = self.clients.client("sqs")

        def change_visibility(receipt_handle: str, delay_s: int) -> None:
            sqs.change_message_visibility(
                QueueUrl=settings.callbacks_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay_s
            )

        return CallbackDelivery(
            CallbackStore(self.clients.table(settings.executions_table)),
            self.signing_secrets,
            self._queue(settings.callbacks_queue_url),
            change_visibility,
            httpx.Client(follow_redirects=False, trust_env=False),
            settings.http_request_allowed_hosts,
            self.alerts.send,
            CallbackPolicy(
                max_attempts=settings.callback_max_attempts,
                base_s=settings.callback_retry_base_s,
                cap_s=settings.callback_retry_cap_s,
                timeout_s=settings.callback_timeout_s,
            ),
        )

    @cached_property
    def webhooks(self) -> WebhookReceiver:
        """Inbound webhook deliveries: the configured sources, their secrets (Secrets Manager, cached)."""
        import json

        from cmdgate.webhooks.deliveries import DeliveryLog
        from cmdgate.webhooks.receiver import WebhookReceiver

        settings = self.settings

        def secrets() -> dict[str, Any]:
            if not settings.webhook_secrets_arn:
                return {}
            value = json.loads(self.secret(settings.webhook_secrets_arn))
            return value if isinstance(value, dict) else {}

        # A recorded delivery is also its audit entry: kept as long as audited execution records.
        ttl_s = max(settings.execution_ttl_days, settings.audit_retention_days) * 86400
        log = DeliveryLog(self.clients.client("dynamodb"), settings.control_table, ttl_s)
        return WebhookReceiver(settings.webhook_sources, secrets, self.executions, self.rate_limiter, log)

    def aws_client(self, service: str) -> Any:
        """A boto3 client for commands that call AWS themselves (counted like every other client)."""
        return self.clients.client(service)

    def breaker_store(self) -> BreakerStore:
        """Breaker state shared by every instance through the control table (for downstreams' breakers)."""
        return self._breaker_store

    @cached_property
    def _breaker_store(self) -> BreakerStore:
        from cmdgate.alerts import BREAKER_OPEN
        from cmdgate.breaker import DynamoDBBreakerStore
        from cmdgate.breaker.alerting import AlertingBreakerStore

        def opened(name: str) -> None:
            self.alerts.send(BREAKER_OPEN, name, f"circuit breaker {name} opened: its downstream keeps failing")

        return AlertingBreakerStore(
            DynamoDBBreakerStore(self.clients.client("dynamodb"), self.settings.control_table), opened
        )

    # -- audit ----------------------------------------------------------------

    @cached_property
    def audit_log(self) -> AuditLog:
        """Admin actions' audit items (the control table)."""
        from cmdgate.audit import AuditLog

        settings = self.settings
        return AuditLog(self.clients.table(settings.control_table), settings.audit_retention_days * 86400)

    @cached_property
    def audit_trail(self) -> AuditTrail:
        """The audit trail's reader: the executions, the state version log and the admin items."""
        from cmdgate.audit import AuditSource, AuditTrail
        from cmdgate.audit.trail import admin_entry, execution_entry, version_entry

        settings = self.settings
        sources = [
            AuditSource("executions", self.clients.table(settings.executions_table), execution_entry),
            AuditSource("state", self.clients.table(settings.state_table), version_entry),
            AuditSource("admin", self.clients.table(settings.control_table), admin_entry),
        ]
        return AuditTrail(sources, settings.audit_retention_days * 86400)

    # -- state ----------------------------------------------------------------

    def state_service(
        self, remaining_s: Callable[[], float] | None = None, audit: AuditStamp | None = None
    ) -> StateService:
        """The state service; `remaining_s` caps lock leases by the invocation's remaining time, and
        `audit` (a request's stamp) makes its writes' log entries their audit entries."""
        from cmdgate.state.service import StateService
        from cmdgate.state.sync import WriteThroughSync

        sync: FifoSyncQueue | WriteThroughSync = self._state_sync_queue
        if self.settings.state_gist_mode == "write_through":
            sync = WriteThroughSync(lambda: self.gist_sync, self._state_sync_queue)
        return StateService(
            self._state_store,
            sync,
            self.events_queue,
            remaining_s=remaining_s,
            archive=lambda: self.gist_sync,
            audit=audit,
        )

    @cached_property
    def _state_store(self) -> StateStore:
        from cmdgate.state.store import StateStore

        settings = self.settings
        return StateStore(
            self.clients.client("dynamodb"),
            settings.state_table,
            retention_s=settings.state_retention_days * 86400,
            audit_retention_s=settings.audit_retention_days * 86400,
            lease_table=settings.control_table,  # a holder's lease on a key excludes other writers
        )

    @property
    def state_sync_queue(self) -> FifoSyncQueue:
        """The FIFO sync queue as every state write schedules it (the healer re-sends through it)."""
        return self._state_sync_queue

    @cached_property
    def _state_sync_queue(self) -> FifoSyncQueue:
        from cmdgate.state.service import FifoSyncQueue

        return FifoSyncQueue(self.clients.client("sqs"), self.settings.state_sync_queue_url)

    @cached_property
    def gist_breaker(self) -> CircuitBreaker:
        """The breaker around the Gist API, shared by every instance through the control table."""
        from cmdgate.breaker import BreakerConfig, CircuitBreaker

        return CircuitBreaker(GIST_BREAKER, self._breaker_store, BreakerConfig(min_calls=3, open_s=10, refresh_s=2))

    @cached_property
    def _gist_client(self) -> GistClient:
        """The Gist API client with the token from Secrets Manager and the shared gist breaker."""
        import httpx

        from cmdgate.gist import GistClient, GistClientConfig

        settings = self.settings
        return GistClient(
            httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0)),
            lambda: self.secret(settings.github_token_secret_arn),
            base_url=settings.gist_api_url,
            config=GistClientConfig(min_write_interval_s=settings.gist_min_write_interval_s),
            breaker=self.gist_breaker,
        )

    @cached_property
    def _state_codec(self) -> Codec:
        """What seals state values in gists: KMS envelopes, or plain text when opted out."""
        from cmdgate.crypto import codec_for

        settings = self.settings
        if settings.state_gist_encryption == "plaintext":
            return codec_for("plaintext")
        return codec_for("kms", self.clients.client("kms"), settings.state_kms_key_id)

    def state_integrity(self) -> StateIntegrity:
        """The healer's check of gist files and registers (cmdgate.state.integrity)."""
        from cmdgate.state.integrity import IntegrityLimits, StateIntegrity

        settings = self.settings
        return StateIntegrity(
            self._state_store,
            self._gist_client,
            self._state_codec,
            self._state_sync_queue,
            limits=IntegrityLimits(items=settings.healer_integrity_items, gists=settings.healer_integrity_gists),
        )

    @cached_property
    def _shard_directory(self) -> ShardDirectory:
        from cmdgate.state.shards import ShardDirectory

        settings = self.settings
        return ShardDirectory(
            self.clients.client("dynamodb"),
            settings.state_table,
            keys_per_gist=settings.state_keys_per_gist,
            bytes_per_gist=settings.state_bytes_per_gist,
        )

    @cached_property
    def gist_sync(self) -> GistSync:
        """Gist sync for the state_sync function: client, encryption, shared write budget."""
        from cmdgate.locks import DynamoDBLockStore, LockManager
        from cmdgate.ratelimit import DynamoDBRateLimitStore, RateLimitPolicy, TokenBucket
        from cmdgate.state.sync import GistSync, GistWriteBudget

        settings = self.settings
        bucket = TokenBucket(DynamoDBRateLimitStore(self.clients.client("dynamodb"), settings.control_table))
        token_id = hashlib.sha256(settings.github_token_secret_arn.encode()).hexdigest()[:16]
        budget = GistWriteBudget(
            bucket,
            token_id,
            (
                RateLimitPolicy(settings.gist_writes_per_minute, 60),
                RateLimitPolicy(settings.gist_writes_per_hour, 3600),
            ),
        )
        # Every write of a gist, from any function, holds the gist's sync lease: gists never move back.
        locks = LockManager(DynamoDBLockStore(self.clients.client("dynamodb"), settings.control_table))
        plaintext = settings.state_gist_encryption == "plaintext"
        return GistSync(
            self._state_store,
            self._gist_client,
            self._state_codec,
            budget,
            locks,
            shards=self._shard_directory,
            namer=self._file_namer,
            stack_id=settings.stack_id,
            plaintext=plaintext,
            request_bytes=settings.state_gist_request_bytes,
            linger_s=settings.state_gist_linger_s,
        )

    @cached_property
    def state_recovery(self) -> StateRecovery:
        """Disaster recovery of the state table from this deployment's gists (an admin route)."""
        from cmdgate.state.recovery import StateRecovery

        settings = self.settings
        return StateRecovery(
            self.clients.client("dynamodb"),
            settings.state_table,
            self._gist_client,
            self._state_codec,
            self._shard_directory,
            stack_id=settings.stack_id,
            plaintext=settings.state_gist_encryption == "plaintext",
        )

    def _file_namer(self) -> FileNamer:
        """File names in shard gists: the key in plain text, an HMAC keyed by KMS-protected material otherwise."""
        from cmdgate.state.layout import FileNamer
        from cmdgate.state.names import FileNameKey

        settings = self.settings
        if settings.state_gist_encryption == "plaintext":
            return FileNamer(None)
        if self._name_key is None:
            self._name_key = FileNameKey(
                self.clients.client("dynamodb"),
                settings.state_table,
                self.clients.client("kms"),
                settings.state_kms_key_id,
            )
        return FileNamer(self._name_key.get())

    # -- alerts and the healer ---------------------------------------------------

    @cached_property
    def alerts(self) -> Alerts:
        """On-call alerts on the SNS topic, one per cause per window (`Alerts.send(alert, subject_id, cause)`)."""
        from cmdgate.alerts import Alerts

        settings = self.settings
        return Alerts(
            self.clients.client("sns"),
            settings.alerts_topic_arn,
            self.clients.client("dynamodb"),
            settings.control_table,
            window_s=settings.alert_window_s,
            runbook_base=settings.runbook_base_url,
            stack_id=settings.stack_id,
        )

    def healer(self, log_action: Callable[[str, Any], None] | None = None) -> Healer:
        """The healer's pass, each action reported to `log_action(action, fields)`."""
        from cmdgate.commands import default_registry, load_packs
        from cmdgate.executions.repairs import ExecutionRepairs
        from cmdgate.healer import Healer, HealerConfig

        settings = self.settings
        load_packs(settings.enabled_packs)

        def retry_safe(command: str) -> bool | None:
            # `retry_safe` on CommandSpec, when the registry has it (read defensively: it is being added).
            spec = default_registry.get(command)
            declared = getattr(spec, "retry_safe", None) if spec is not None else None
            return declared if isinstance(declared, bool) else None

        return Healer(
            sqs=self.clients.client("sqs"),
            dynamodb=self.clients.client("dynamodb"),
            repairs=ExecutionRepairs(self.clients.table(settings.executions_table)),
            executions_queue=self._queue(settings.executions_queue_url),
            executions_dlq_url=settings.executions_dlq_url,
            dead_letter_queues=self._dead_letter_queues(),
            sync=self._state_sync_queue,
            alerts=self.alerts,
            state_table=settings.state_table,
            control_table=settings.control_table,
            retry_safe=retry_safe,
            config=HealerConfig(
                max_redrives=settings.healer_max_redrives,
                stuck_grace_s=settings.healer_stuck_grace_s,
                queued_after_s=settings.healer_queued_after_s,
                gist_drift_s=settings.healer_gist_drift_s,
                batch=settings.healer_batch,
            ),
            integrity=self.state_integrity if settings.state_table else None,
            events_queue_url=settings.events_queue_url,
            events_dlq_url=settings.events_dlq_url,
            state_sync_dlq_url=settings.state_sync_dlq_url,
            log_action=log_action,
        )

    def _dead_letter_queues(self) -> dict[str, str]:
        settings = self.settings
        queues = {
            "executions": settings.executions_dlq_url,
            "events": settings.events_dlq_url,
            "state_sync": settings.state_sync_dlq_url,
        }
        return {name: url for name, url in queues.items() if url}

    # -- queues and health ------------------------------------------------------

    @cached_property
    def events_queue(self) -> MessageQueue | None:
        """The events queue (command.executed, state.changed), when configured."""
        return self._queue(self.settings.events_queue_url) if self.settings.events_queue_url else None

    def _queue(self, url: str) -> MessageQueue:
        from cmdgate.executions import MessageQueue

        return MessageQueue(self.clients.client("sqs"), url)

    def health_checks(self) -> list[Check]:
        """The dependencies `/v1/health` probes."""
        from cmdgate.health import Check

        settings = self.settings

        def dynamodb() -> None:
            self.clients.client("dynamodb").get_item(
                TableName=settings.control_table, Key={"pk": {"S": "health#probe"}}
            )

        def sqs() -> dict[str, Any]:
            queues = {
                "executions": settings.executions_queue_url,
                "events": settings.events_queue_url,
                "state_sync": settings.state_sync_queue_url,
            }
            return {"queues": _depths(self.clients.client("sqs"), queues)}

        def dead_letters() -> dict[str, Any]:
            depths = _depths(self.clients.client("sqs"), self._dead_letter_queues())
            if any(d["visible"] + d["in_flight"] for d in depths.values()):
                raise DeadLettersWaiting("a dead-letter queue holds messages", {"queues": depths})
            return {"queues": depths}

        def executions() -> dict[str, Any]:
            return {"oldest_queued_age_s": oldest_queued_age_s(self.clients.client("dynamodb"), settings)}

        def healer() -> dict[str, Any]:
            from cmdgate.healer import last_pass_age_s

            age = last_pass_age_s(self.clients.client("dynamodb"), settings.control_table, time.time())
            details = {
                "last_pass_age_s": None if age is None else round(age, 1),
                "late_after_s": settings.healer_late_s,
            }
            if age is not None and age > settings.healer_late_s:
                raise HealerLate("the healer's last successful pass is late", details)
            return details

        def gist() -> None:
            if self.gist_breaker.state() == "open":
                raise GistCircuitOpen("the gist circuit is open")

        return [
            Check("dynamodb", dynamodb),
            Check("sqs", sqs),
            Check("dead_letters", dead_letters, critical=False),
            Check("executions", executions, critical=False, informational=True),
            Check("healer", healer, critical=False),
            Check("gist", gist, critical=False),
        ]


def _once(make: Callable[[], Codec]) -> Callable[[], Codec]:
    """`make`, called on first use only (so its data-key caches live as long as the environment)."""
    made: list[Codec] = []

    def get() -> Codec:
        if not made:
            made.append(make())
        return made[0]

    return get


def build(settings: Settings, clients: AwsClients | None = None) -> Services:
    """The composition root of one execution environment."""
    return Services(settings, clients or AwsClients())


@lru_cache(maxsize=1)
def services() -> Services:
    """This environment's services, from its settings (the handlers' one entry point)."""
    return build(get_settings())


class GistCircuitOpen(Exception):
    """Health: gist sync is paused by its breaker (writes still succeed; sync lags)."""


def _depths(sqs: Any, queues: dict[str, str]) -> dict[str, dict[str, int]]:
    from cmdgate.healer import queue_depth

    depths = {}
    for name, url in queues.items():
        if url:
            depth = queue_depth(sqs, name, url)
            depths[name] = {"visible": depth.visible, "in_flight": depth.in_flight}
    return depths


def oldest_queued_age_s(dynamodb: Any, settings: Settings) -> float | None:
    """Age of the oldest `queued` execution (SQS has no such figure: the records' by_status index does)."""
    from datetime import datetime

    items = dynamodb.query(
        TableName=settings.executions_table,
        IndexName="by_status",
        KeyConditionExpression="#s = :queued",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":queued": {"S": "queued"}},
        ScanIndexForward=True,
        Limit=1,
    ).get("Items", [])
    if not items:
        return None
    created = datetime.fromisoformat(items[0]["created_at"]["S"].replace("Z", "+00:00")).timestamp()
    return round(max(0.0, time.time() - created), 1)


class DeadLettersWaiting(CheckFailed):
    """Health: a dead-letter queue holds messages (the healer triages them; degraded until it has)."""


class HealerLate(CheckFailed):
    """Health: the healer's last successful pass is older than `healer_late_s`."""
