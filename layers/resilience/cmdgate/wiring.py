"""The composition root: builds each service once per execution environment, on first use.

Imports sit inside the builders: each function pays at cold start only for what it uses (the
authorizer needs API keys, not Powertools idempotency, the Gist client or cryptography).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from cmdgate import aws
from cmdgate.config import get_settings

if TYPE_CHECKING:
    from cmdgate.auth import ApiKeyStore
    from cmdgate.auth.jwt_tokens import JwtVerifier
    from cmdgate.breaker import CircuitBreaker
    from cmdgate.executions import ExecutionService, MessageQueue
    from cmdgate.health import Check
    from cmdgate.idempotency import IdempotentRequests
    from cmdgate.locks import LockManager
    from cmdgate.ratelimit.requests import RequestRateLimiter
    from cmdgate.state.service import FifoSyncQueue, StateService
    from cmdgate.state.store import StateStore
    from cmdgate.state.sync import GistSync, WriteThroughSync
    from cmdgate.stats import CommandStats


@lru_cache(maxsize=1)
def api_key_store() -> ApiKeyStore:
    """API keys in the keys table."""
    from cmdgate.auth import ApiKeyStore

    return ApiKeyStore(aws.dynamodb_table(get_settings().keys_table))


@lru_cache(maxsize=1)
def jwt_verifier() -> JwtVerifier | None:
    """The JWT verifier for the configured issuers, or None when none are (imports PyJWT only then)."""
    settings = get_settings()
    if not settings.jwt_issuers.strip():
        return None
    import httpx
    from aws_lambda_powertools.utilities.parameters import get_secret

    from cmdgate.auth.jwt_tokens import JwtVerifier, parse_jwt_issuers

    def secret(arn: str) -> str:
        return str(get_secret(arn, max_age=settings.secrets_max_age_s))

    http = httpx.Client(timeout=httpx.Timeout(3.0, connect=2.0))
    return JwtVerifier(parse_jwt_issuers(settings.jwt_issuers), http=http, secret_provider=secret)


@lru_cache(maxsize=1)
def execution_service() -> ExecutionService:
    """The execution service with the configured command packs loaded."""
    from cmdgate.commands import default_registry, load_packs
    from cmdgate.executions import ExecutionService, ExecutionStore, MessageQueue

    settings = get_settings()
    load_packs(settings.enabled_packs)
    sqs = aws.client("sqs")
    return ExecutionService(
        ExecutionStore(aws.dynamodb_table(settings.executions_table)),
        MessageQueue(sqs, settings.executions_queue_url),
        MessageQueue(sqs, settings.events_queue_url) if settings.events_queue_url else None,
        default_registry,
        max_result_bytes=settings.max_result_bytes,
        max_receive_count=settings.max_receive_count,
        execution_ttl_s=settings.execution_ttl_days * 86400,
    )


@lru_cache(maxsize=1)
def idempotent_requests() -> IdempotentRequests:
    """Idempotency-Key handling backed by the idempotency table (Powertools schema)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from cmdgate.idempotency import IdempotentRequests

    settings = get_settings()
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=aws.client("dynamodb"))
    return IdempotentRequests(persistence, expires_after_s=settings.idempotency_ttl_s)


@lru_cache(maxsize=1)
def rate_limiter() -> RequestRateLimiter:
    """Token buckets per (principal, command) and adaptive tightening, in the control table."""
    from cmdgate.ratelimit import AdaptiveLimiter, DynamoDBRateLimitStore, RateLimitPolicy, TokenBucket
    from cmdgate.ratelimit.requests import RequestRateLimiter

    settings = get_settings()
    store = DynamoDBRateLimitStore(aws.client("dynamodb"), settings.control_table)
    return RequestRateLimiter(
        TokenBucket(store),
        AdaptiveLimiter(store) if settings.adaptive_rate_limit else None,
        RateLimitPolicy(settings.default_rate_limit_quota, settings.default_rate_limit_window_s),
    )


@lru_cache(maxsize=1)
def _state_parts() -> tuple[StateStore, LockManager, FifoSyncQueue, MessageQueue | None]:
    from cmdgate.executions import MessageQueue
    from cmdgate.locks import DynamoDBLockStore, LockConfig, LockManager
    from cmdgate.state.service import FifoSyncQueue
    from cmdgate.state.store import StateStore

    settings = get_settings()
    dynamodb, sqs = aws.client("dynamodb"), aws.client("sqs")
    return (
        StateStore(dynamodb, settings.state_table, retention_s=settings.state_retention_days * 86400),
        # State leases are short (one read-modify-write), so waiters poll often.
        LockManager(DynamoDBLockStore(dynamodb, settings.control_table), LockConfig(poll_s=0.05, jitter_s=0.02)),
        FifoSyncQueue(sqs, settings.state_sync_queue_url),
        MessageQueue(sqs, settings.events_queue_url) if settings.events_queue_url else None,
    )


def state_service(remaining_s: Callable[[], float] | None = None) -> StateService:
    """The state service; `remaining_s` caps lock leases by the invocation's remaining time."""
    from cmdgate.state.service import StateService
    from cmdgate.state.sync import WriteThroughSync

    store, locks, queue, events = _state_parts()
    sync: FifoSyncQueue | WriteThroughSync = queue
    if get_settings().state_gist_mode == "write_through":
        sync = WriteThroughSync(gist_sync, queue)
    return StateService(store, locks, sync, events, remaining_s=remaining_s, archive=gist_sync)


GIST_BREAKER = "gist"


def gist_breaker() -> CircuitBreaker:
    """The breaker around the Gist API, shared by every instance through the control table."""
    return _gist_breaker()


@lru_cache(maxsize=1)
def _gist_breaker() -> CircuitBreaker:
    from cmdgate.breaker import BreakerConfig, CircuitBreaker, DynamoDBBreakerStore

    settings = get_settings()
    store = DynamoDBBreakerStore(aws.client("dynamodb"), settings.control_table)
    return CircuitBreaker(GIST_BREAKER, store, BreakerConfig(min_calls=3, open_s=10, refresh_s=2))


@lru_cache(maxsize=1)
def gist_sync() -> GistSync:
    """Gist sync for the state_sync function: client, encryption, shared write budget."""
    import httpx
    from aws_lambda_powertools.utilities.parameters import get_secret

    from cmdgate.crypto import codec_for
    from cmdgate.gist import GistClient, GistClientConfig
    from cmdgate.ratelimit import DynamoDBRateLimitStore, RateLimitPolicy, TokenBucket
    from cmdgate.state.sync import GistSync, GistWriteBudget

    settings = get_settings()

    def token() -> str:
        return str(get_secret(settings.github_token_secret_arn, max_age=settings.secrets_max_age_s))

    client = GistClient(
        httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0)),
        token,
        base_url=settings.gist_api_url,
        config=GistClientConfig(min_write_interval_s=settings.gist_min_write_interval_s),
        breaker=gist_breaker(),
    )
    if settings.state_gist_encryption == "plaintext":
        codec = codec_for("plaintext")
    else:
        codec = codec_for("kms", aws.client("kms"), settings.state_kms_key_id)
    bucket = TokenBucket(DynamoDBRateLimitStore(aws.client("dynamodb"), settings.control_table))
    token_id = hashlib.sha256(settings.github_token_secret_arn.encode()).hexdigest()[:16]
    budget = GistWriteBudget(
        bucket,
        token_id,
        (RateLimitPolicy(settings.gist_writes_per_minute, 60), RateLimitPolicy(settings.gist_writes_per_hour, 3600)),
    )
    return GistSync(_state_parts()[0], client, codec, budget)


@lru_cache(maxsize=1)
def command_stats() -> CommandStats:
    """Per-command counters in the control table."""
    from cmdgate.stats import CommandStats

    return CommandStats(aws.client("dynamodb"), get_settings().control_table)


def health_checks() -> list[Check]:
    """The dependencies `/v1/health` probes."""
    from cmdgate.health import Check

    settings = get_settings()

    def dynamodb() -> None:
        aws.client("dynamodb").get_item(TableName=settings.control_table, Key={"pk": {"S": "health#probe"}})

    def sqs() -> None:
        aws.client("sqs").get_queue_attributes(
            QueueUrl=settings.executions_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )

    def gist() -> None:
        if gist_breaker().state() == "open":
            raise GistCircuitOpen("the gist circuit is open")

    return [Check("dynamodb", dynamodb), Check("sqs", sqs), Check("gist", gist, critical=False)]


class GistCircuitOpen(Exception):
    """Health: gist sync is paused by its breaker (writes still succeed; sync lags)."""
