"""The composition root's health checks against in-process AWS: DLQ depth, oldest queued execution, healer age."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config

from cmdgate.config import Settings
from cmdgate.executions.model import Execution
from cmdgate.healer import LAST_PASS_KEY
from cmdgate.health import health_report, run_checks
from cmdgate.wiring import build


class Clients:
    def __init__(self, session: boto3.session.Session, broken: set[str] | None = None) -> None:
        self._session = session
        self._broken = broken or set()

    def client(self, service: str) -> Any:
        if service in self._broken:  # nothing listens there: every call fails to connect
            return self._session.client(
                service,
                endpoint_url="http://127.0.0.1:9",
                config=Config(connect_timeout=0.2, read_timeout=0.2, retries={"max_attempts": 1}),
            )
        return self._session.client(service)

    def table(self, name: str) -> Any:
        return self._session.resource("dynamodb").Table(name)


class Env:
    def __init__(self, session: boto3.session.Session, table_like: Callable[[str], Any]) -> None:
        self.session = session
        sqs = session.client("sqs")
        self.sqs = sqs
        self.executions = table_like("ExecutionsTable")
        self.control = table_like("ControlTable")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("ex", "ex-dlq", "ev", "ev-dlq")}
        self.urls = urls
        self.settings = Settings(
            executions_table=self.executions.name,
            control_table=self.control.name,
            executions_queue_url=urls["ex"],
            executions_dlq_url=urls["ex-dlq"],
            events_queue_url=urls["ev"],
            events_dlq_url=urls["ev-dlq"],
            healer_late_s=600,
        )

    def report(self, broken: set[str] | None = None) -> dict[str, Any]:
        services = build(self.settings, Clients(self.session, broken))  # type: ignore[arg-type]
        return health_report(run_checks(services.health_checks(), 5.0), detailed=True)


@pytest.fixture
def env(session: boto3.session.Session, table_like: Callable[[str], Any]) -> Env:
    return Env(session, table_like)


def test_healthy_reports_every_queue_depth_and_no_backlog(env: Env) -> None:
    env.sqs.send_message(QueueUrl=env.urls["ex"], MessageBody="{}")
    report = env.report()
    assert report["status"] == "healthy"
    checks = report["checks"]
    assert checks["sqs"]["queues"] == {
        "executions": {"visible": 1, "in_flight": 0},
        "events": {"visible": 0, "in_flight": 0},
    }
    assert checks["dead_letters"]["queues"]["executions"] == {"visible": 0, "in_flight": 0}
    assert checks["executions"]["oldest_queued_age_s"] is None
    assert checks["healer"]["last_pass_age_s"] is None  # never ran: not called late


def test_a_message_in_a_dlq_degrades_health(env: Env) -> None:
    env.sqs.send_message(QueueUrl=env.urls["ev-dlq"], MessageBody="{}")
    report = env.report()
    assert report["status"] == "degraded"
    assert report["checks"]["dead_letters"]["status"] == "failing"
    assert report["checks"]["dead_letters"]["error_class"] == "DeadLettersWaiting"
    assert report["checks"]["dead_letters"]["queues"]["events"] == {"visible": 1, "in_flight": 0}


def test_the_oldest_queued_execution_age_comes_from_the_records(env: Env) -> None:
    def queued(execution_id: str, age_s: float) -> None:
        created = datetime.fromtimestamp(time.time() - age_s, UTC).isoformat().replace("+00:00", "Z")
        env.executions.put_item(
            Item=Execution(
                execution_id=execution_id,
                command="echo",
                principal_id="p",
                mode="async",
                status="queued",
                created_at=created,
            ).to_item()
        )

    queued("young", 5)
    queued("old", 125)
    age = env.report()["checks"]["executions"]["oldest_queued_age_s"]
    assert 124 <= age <= 130


def test_a_late_healer_degrades_health(env: Env) -> None:
    def last_pass(age_s: float) -> None:
        env.control.put_item(Item={"pk": LAST_PASS_KEY, "finished_at": int(time.time() - age_s)})

    last_pass(60)
    report = env.report()
    assert report["status"] == "healthy" and 59 <= report["checks"]["healer"]["last_pass_age_s"] <= 65
    last_pass(3600)
    report = env.report()
    assert report["status"] == "degraded"
    assert report["checks"]["healer"]["error_class"] == "HealerLate"
    assert report["checks"]["healer"]["last_pass_age_s"] >= 3600


def test_unreachable_dynamodb_is_unhealthy(env: Env) -> None:
    report = env.report(broken={"dynamodb"})
    assert report["status"] == "unhealthy"
    assert report["checks"]["dynamodb"]["status"] == "failing"


def test_the_public_view_has_no_figures(env: Env) -> None:
    services = build(env.settings, Clients(env.session))  # type: ignore[arg-type]
    public = health_report(run_checks(services.health_checks(), 5.0), detailed=False)
    assert set(public["checks"]["sqs"]) == {"status", "latency_ms"}


def test_a_figure_only_check_that_fails_changes_no_status() -> None:
    from cmdgate.health import Check, overall_status

    def broken() -> None:
        raise TimeoutError

    results = run_checks([Check("executions", broken, critical=False, informational=True)], 1.0)
    assert not results[0].ok and overall_status(results) == "healthy"
