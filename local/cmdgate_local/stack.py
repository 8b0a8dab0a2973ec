"""The whole system on loopback from real parts: moto, the Gist stand-in, functions in the
Lambda emulator, the API Gateway front, SQS pollers and schedules - all read from template.yaml."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from cmdgate_local import build_snapshot, pack_targets
from cmdgate_local.apigw import ApiGateway, ApiServer
from cmdgate_local.gist_server import GistServer
from cmdgate_local.lambda_runtime import ExecutionEnvironment, FunctionPool, FunctionRuntime, InvokeResult, rie_binary
from cmdgate_local.moto_endpoint import EVENT_SOURCES_PATH, MotoEndpoint
from cmdgate_local.provision import Provisioner
from cmdgate_local.sqs_poller import SqsPoller
from cmdgate_local.template import REGION, Template, load_template

log = logging.getLogger("cmdgate_local")
READY_LINE = "cmdgate local stack ready on {url}"
WEBHOOK_SOURCES_FILE = Path(__file__).with_name("webhooks.json")
# `make run` shows the admin key it created: the one line of any log allowed to hold a secret.
ADMIN_KEY_LINE = "admin API key (created for this run): {key}"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class StackConfig:
    """Where things are and how the local stack should differ from AWS (shorter timers, ports)."""

    root: Path
    api_port: int = 3000
    moto_port: int = 0
    gist_port: int = 0
    pool_size: int = 4
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    authorizer_ttl_s: float | None = None
    bootstrap_admin_key: str | None = None
    environment_overrides: dict[str, str] = field(default_factory=dict)
    state_file: Path | None = None
    run_schedules: bool = True
    log_dir: Path | None = None

    @property
    def build_dir(self) -> Path:
        """What `sam build` produced."""
        return self.root / ".aws-sam" / "build"

    @property
    def snapshot_parent(self) -> Path:
        """Where this stack keeps its own copy of the build (beside its state file)."""
        return self.state_file.parent if self.state_file else self.root / ".local-stack"

    @property
    def function_log_dir(self) -> Path:
        """Function logs, one file per execution environment."""
        return self.log_dir or self.root / ".local-stack" / "logs"

    @property
    def runtime_python(self) -> Path:
        """The python of the runtime venv: awslambdaric and boto3 only, as the Lambda runtime has."""
        return self.root / ".venv-runtime" / "bin" / "python"

    @property
    def sam_site_packages(self) -> Path:
        """The aws-sam-cli venv's site-packages (it ships aws-lambda-rie)."""
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        return self.root / ".venv-sam" / "lib" / version / "site-packages"


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable by its owner only (the state file holds the admin key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # The mode given to open() is masked by the umask and ignored for an existing file.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


def aws_session(endpoint_url: str) -> boto3.session.Session:
    """A boto3 session aimed at moto."""
    os.environ.setdefault("AWS_ENDPOINT_URL", endpoint_url)
    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )


def function_runtimes(
    template: Template, provisioner: Provisioner, build_dir: Path, overrides: dict[str, str]
) -> dict[str, FunctionRuntime]:
    """Each function's code, layers and environment as the template gives them."""
    runtimes = {}
    for logical_id, spec in template.functions().items():
        environment = {k: _env_str(provisioner.resolve(v)) for k, v in spec.environment.items()}
        environment.update(overrides)
        # Its own access key id, so the moto endpoint can tell whose call each is (IAM checks).
        environment["AWS_ACCESS_KEY_ID"] = function_access_key(logical_id)
        runtimes[logical_id] = FunctionRuntime(
            name=logical_id,
            handler=spec.handler,
            code_dir=build_dir / logical_id,
            layer_dirs=tuple(build_dir / layer / "python" for layer in spec.layers),
            environment=environment,
            timeout_s=spec.timeout_s,
            memory_mb=spec.memory_mb,
        )
    return runtimes


def function_access_key(logical_id: str) -> str:
    """The access key id a function's AWS calls are signed with locally (moto accepts any)."""
    return f"LOCAL{logical_id.upper()}"


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def local_webhook_secret(kind: str) -> str:
    """A new signing secret in the form a sender of `kind` issues (Standard Webhooks: whsec_ + base64 of 32 bytes)."""
    if kind == "standard":
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return ("whsec_" if kind == "stripe" else "") + secrets.token_hex(24)


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of a `rate(N unit)` expression; None for cron."""
    found = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not found:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[found.group(2).rstrip("s")]
    return int(found.group(1)) * unit


class LocalStack:
    """Starts and stops every part; `invoke(function, event)` runs a function in its pool."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.moto = MotoEndpoint(config.moto_port)
        self.gist = GistServer(port=config.gist_port)
        self.pools: dict[str, FunctionPool] = {}
        self.pollers: list[SqsPoller] = []
        self.api: ApiServer | None = None
        self.admin_key: str | None = None
        self.resources: dict[str, dict[str, str]] = {}
        self.runtimes: dict[str, FunctionRuntime] = {}
        self.parameters: dict[str, str] = {}
        self._stop = threading.Event()
        self._session: boto3.session.Session | None = None
        # This run's copy of the build, which every function runs from.
        self.build_dir: Path | None = None
        self._wrote_state = False

    def start(self) -> None:
        """Bring everything up, in dependency order, and wait until the API answers."""
        cfg = self.config
        self.build_dir = build_snapshot.take(cfg.build_dir, cfg.snapshot_parent)
        cfg.function_log_dir.mkdir(parents=True, exist_ok=True)
        self.moto.start()
        self.gist.start()
        self._session = aws_session(self.moto.url)
        parameters = dict(cfg.parameter_overrides)
        if not parameters.get("GitHubTokenSecretArn"):
            # The deployment's token secret, here in moto; the loopback Gist API accepts any token.
            parameters["GitHubTokenSecretArn"] = self._session.client("secretsmanager").create_secret(
                Name="cmdgate-local-github-token", SecretString="local-gist-token"
            )["ARN"]
        self._provision_webhooks(parameters)
        pack_targets.provision(self._session, self.moto.url, parameters)
        self.parameters = parameters
        template = Template(load_template(cfg.root / "template.yaml"), parameters)
        provisioner = Provisioner(template, self._session)
        self.resources = provisioner.provision_all()
        overrides = {
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.moto.url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "GIST_API_URL": self.gist.url,
            # A test issuer's JWKS is served over plain http on 127.0.0.1 (cmdgate_local.jwks_issuer).
            "JWKS_ALLOW_LOOPBACK_HTTP": "true",
            **cfg.environment_overrides,
        }
        self.runtimes = function_runtimes(template, provisioner, self.build_dir, overrides)
        rie = rie_binary(cfg.sam_site_packages)
        for name, runtime in self.runtimes.items():
            reserved = template.functions()[name].reserved_concurrency
            size = min(cfg.pool_size, int(reserved)) if reserved else cfg.pool_size
            envs = [
                ExecutionEnvironment(runtime, i, rie, cfg.runtime_python, cfg.function_log_dir) for i in range(size)
            ]
            self.pools[name] = FunctionPool(envs, throttle_after_s=runtime.timeout_s + 5)
            self.pools[name].start()
        self._seed_admin_key()
        app = ApiGateway(
            routes=template.api_routes(),
            authorizer=template.authorizer(),
            gateway_responses=template.gateway_responses(),
            invoke=self.invoke,
            stage=template.stage_name(),
            authorizer_ttl_s=cfg.authorizer_ttl_s,
        )
        self.api = ApiServer(app, cfg.api_port)
        self.api.start()
        sqs = self._session.client("sqs")
        for source in template.sqs_sources():
            queue = self.resources[source.queue_id]
            concurrency = min(source.max_concurrency, self.pools[source.function_id].size)
            poller = SqsPoller(source, queue["QueueUrl"], queue["Arn"], sqs, self.invoke, concurrency)
            poller.start()
            self.pollers.append(poller)
        self.moto.controls[EVENT_SOURCES_PATH] = self.set_event_sources
        if cfg.run_schedules:
            for schedule in template.schedules(provisioner.resolve):
                period = rate_seconds(schedule.expression)
                if period is None:
                    log.warning(
                        "schedule %s of %s is not a rate(); not run locally", schedule.expression, schedule.function_id
                    )
                    continue
                threading.Thread(
                    target=self._run_schedule, args=(schedule.function_id, period), daemon=True, name="schedule"
                ).start()
        self._wait_until_ready()
        self._write_state()

    def set_event_sources(self, asked: dict[str, Any]) -> dict[str, Any]:
        """Pause or resume a function's event source mappings (`{"function": id, "enabled": bool}`).

        A pause answers once the mappings are idle - no receive or invocation under way, so nothing
        more reaches the function - or after `idle_wait_s` (default 60) with `busy` above 0.
        """
        function, enabled = asked["function"], asked["enabled"]
        wait_s = asked.get("idle_wait_s", 60)
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        if isinstance(wait_s, bool) or not isinstance(wait_s, int | float) or not 0 <= wait_s <= 900:
            raise ValueError("idle_wait_s must be a number of seconds from 0 to 900")
        mappings = [p for p in self.pollers if p.function_id == function]
        if not mappings:
            raise ValueError(f"{function!r} has no event source mapping")
        for poller in mappings:
            poller.set_enabled(enabled)
        deadline = time.monotonic() + wait_s
        while not enabled and any(p.busy for p in mappings) and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = sum(p.busy for p in mappings) if not enabled else None
        return {"function": function, "enabled": enabled, "mappings": len(mappings), "busy": busy}

    def invoke(self, function_id: str, event: dict[str, Any]) -> InvokeResult:
        """Invoke a function on its pool."""
        result = self.pools[function_id].invoke(event)
        log.info(
            "%s env#%d %s %.1f ms status=%s",
            function_id,
            result.environment,
            "cold" if result.cold else "warm",
            result.duration_ms,
            result.status,
        )
        return result

    @property
    def url(self) -> str:
        """The API's base URL."""
        assert self.api is not None
        return self.api.url

    def stop(self) -> None:
        """Stop every part; no child process survives."""
        self._stop.set()
        for poller in self.pollers:
            poller.stop()
        if self.api is not None:
            self.api.stop()
        for pool in self.pools.values():
            pool.stop()
        self.gist.stop()
        self.moto.stop()
        if self._wrote_state and self.config.state_file is not None:
            # A state file outliving its stack would send `make invoke` to dead ports.
            self.config.state_file.unlink(missing_ok=True)
            self._wrote_state = False
        if self.build_dir is not None:
            build_snapshot.release(self.build_dir)
            self.build_dir = None

    def _provision_webhooks(self, parameters: dict[str, str]) -> None:
        """The local webhook sources (local/cmdgate_local/webhooks.json: each event starts the testing pack's
        `count`) and their signing secrets, new random ones in a moto secret, unless the parameters name others."""
        assert self._session is not None
        if not parameters.get("WebhookSources"):
            parameters["WebhookSources"] = json.dumps(
                json.loads(WEBHOOK_SOURCES_FILE.read_text()), separators=(",", ":")
            )
        if not parameters.get("WebhookSecretsArn"):
            kinds = {name: spec.get("kind", name) for name, spec in json.loads(parameters["WebhookSources"]).items()}
            parameters["WebhookSecretsArn"] = self._session.client("secretsmanager").create_secret(
                Name="cmdgate-local-webhook-secrets",
                SecretString=json.dumps({name: local_webhook_secret(kind) for name, kind in kinds.items()}),
            )["ARN"]

    def _seed_admin_key(self) -> None:
        """The deployment's bootstrap path, with the chosen key (CMDGATE_BOOTSTRAP_ADMIN_KEY) or a new one."""
        from cmdgate.auth import ApiKeyStore

        assert self._session is not None
        table = self._session.resource("dynamodb").Table(self.resources["KeysTable"]["Ref"])
        self.admin_key, _ = ApiKeyStore(table).bootstrap_admin(
            api_key=self.config.bootstrap_admin_key or None, rate_limit={"quota": 100_000, "window_s": 60}
        )

    def _run_schedule(self, function_id: str, period_s: float) -> None:
        while not self._stop.wait(period_s):
            event = {
                "version": "0",
                "id": os.urandom(8).hex(),
                "detail-type": "Scheduled Event",
                "source": "aws.scheduler",
                "account": "123456789012",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": REGION,
                "resources": [],
                "detail": {},
            }
            try:
                self.invoke(function_id, event)
            except Exception:
                log.exception("scheduled run of %s failed", function_id)

    def _wait_until_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.url}/v1/health", timeout=30)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"the API did not become healthy: {last}")

    def _write_state(self) -> None:
        if self.config.state_file is None:
            return
        state = {
            "api_url": self.url,
            "moto_url": self.moto.url,
            "gist_url": self.gist.url,
            "admin_key": self.admin_key,
            "pid": os.getpid(),
            "build_dir": str(self.build_dir),
            "resources": self.resources,
            "functions": {name: rt.environment for name, rt in self.runtimes.items()},
            "parameters": self.parameters,
        }
        write_private(self.config.state_file, json.dumps(state, indent=2))
        self._wrote_state = True
