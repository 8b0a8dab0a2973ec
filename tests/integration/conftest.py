"""The local stack's plumbing: `running_stack` and its handles (the shared session `stack` is in tests/conftest.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from cmdgate_local.launcher import launch

ADMIN_KEY = "cg_test_admin_key_for_integration_only"
MAX_RECEIVE_COUNT = 2
FOLLOW_UP_MAX_DEPTH = 3
JWT_ISSUER = "https://issuer.test/"
JWT_AUDIENCE = "cmdgate"
JWT_SECRET_NAME = "cmdgate-test-jwt-secret"
JWT_ISSUERS = json.dumps(
    [
        {
            "issuer": JWT_ISSUER,
            "audience": JWT_AUDIENCE,
            "algorithms": ["HS256"],
            "hs256_secret_arn": JWT_SECRET_NAME,
            "claim_permissions": {"role=deployer": ["commands.run:echo", "commands.list"]},
        }
    ]
)


@dataclass
class Stack:
    """A running local stack and handles on its parts."""

    url: str
    admin_key: str
    state: dict[str, Any]
    log_dir: Path

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    @property
    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def aws(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client(service, endpoint_url=self.state["moto_url"])

    def resource(self, logical_id: str, attribute: str = "Ref") -> str:
        return str(self.state["resources"][logical_id][attribute])

    def key_store(self) -> Any:
        """The ApiKeyStore of this stack's keys table, reached directly through moto."""
        from cmdgate.auth import ApiKeyStore

        table = (
            boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
            .resource("dynamodb", endpoint_url=self.state["moto_url"])
            .Table(self.resource("KeysTable"))
        )
        return ApiKeyStore(table)

    def create_key(self, permissions: list[str], name: str = "test", rate_limit: dict[str, int] | None = None) -> str:
        """Register an API key directly in the keys table."""
        key, _ = self.key_store().create(name, permissions, rate_limit or {"quota": 1000, "window_s": 60})
        return str(key)


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; fail with the last value otherwise (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last value: {value!r})")


@contextmanager
def running_stack(
    workdir: Path, extra_params: tuple[str, ...] = (), *, jwt_issuers: str = JWT_ISSUERS
) -> Iterator[Stack]:
    """A local stack with short timers (authorizer TTL 1 s, visibility timeouts, MaxReceiveCount 2)."""
    params = (
        "WorkerVisibilityTimeoutS=4",
        # Not shorter than the event processor's 10 s timeout (AWS's own advice): with 1 s, a cold,
        # loaded event processor had its message redelivered mid-run, and a third receive moved the
        # delayed stats.mirror message to the DLQ, so a burst's last count was never mirrored.
        "EventsVisibilityTimeoutS=10",
        f"MaxReceiveCount={MAX_RECEIVE_COUNT}",
        f"JwtIssuers={jwt_issuers}",
        f"JwtSecretArn={JWT_SECRET_NAME}",  # the authorizer's policy names the secret it reads
        "HttpRequestAllowedHosts=127.0.0.1",
        "StateSyncVisibilityTimeoutS=2",
        "StateGistLingerS=1",  # tests wait for syncs; the shard tests start a stack of their own with more
        "CallbackMaxAttempts=3",  # callback tests: retried twice, then abandoned
        "CallbackTimeoutS=1",
        f"FollowUpMaxDepth={FOLLOW_UP_MAX_DEPTH}",
        "StatsMirrorIntervalS=2",
        *extra_params,
    )
    try:
        with launch(workdir, admin_key=ADMIN_KEY, params=params, authorizer_ttl_s=1) as running:
            yield Stack(url=running.url, admin_key=ADMIN_KEY, state=running.state, log_dir=running.log_dir)
    except RuntimeError as failure:
        pytest.fail(str(failure))
