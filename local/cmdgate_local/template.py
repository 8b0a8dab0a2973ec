"""Reads template.yaml (short-form intrinsics included) and resolves what the local stack needs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "cmdgate-local"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into `{"Ref": x}` and `!Sub ...` into `{"Fn::Sub": ...}`."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain data."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass  # nosec B506
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a template")
    return data


@dataclass(frozen=True)
class ApiRoute:
    """One route of the REST API, as the template declares it."""

    function_id: str
    method: str
    path: str  # e.g. /v1/commands/{name}
    authorized: bool

    def matcher(self) -> re.Pattern[str]:
        """A regex for concrete paths; `{name}` is one segment, `{proxy+}` many."""
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                pattern += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                pattern += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                pattern += re.escape(part)
        return re.compile(pattern + r"\Z")


@dataclass(frozen=True)
class SqsSource:
    """An SQS event source mapping."""

    function_id: str
    queue_id: str
    batch_size: int
    batching_window_s: float
    report_batch_item_failures: bool
    max_concurrency: int


@dataclass(frozen=True)
class Schedule:
    """A scheduled invocation."""

    function_id: str
    expression: str


@dataclass
class FunctionSpec:
    """A function as the local stack runs it."""

    logical_id: str
    handler: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, Any]
    layers: list[str]
    reserved_concurrency: int | None = None


@dataclass
class Template:
    """The parsed template plus parameter values and helpers to resolve intrinsics."""

    data: dict[str, Any]
    parameter_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Logical id -> resource."""
        return dict(self.data.get("Resources", {}))

    def parameter(self, name: str) -> str:
        """A parameter's value: override, else default."""
        if name in self.parameter_overrides:
            return self.parameter_overrides[name]
        spec = self.data.get("Parameters", {}).get(name)
        if spec is None:
            raise KeyError(f"unknown parameter {name}")
        return str(spec.get("Default", ""))

    def condition(self, name: str, resolve: Callable[[Any], Any]) -> bool:
        """Evaluate a named condition."""
        return bool(self._evaluate_condition(self.data["Conditions"][name], resolve))

    def _evaluate_condition(self, expr: Any, resolve: Callable[[Any], Any]) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, value),) = expr.items()
            if key == "Fn::Equals":
                return resolve(value[0]) == resolve(value[1])
            if key == "Fn::Not":
                return not self._evaluate_condition(value[0], resolve)
            if key == "Fn::And":
                return all(self._evaluate_condition(v, resolve) for v in value)
            if key == "Fn::Or":
                return any(self._evaluate_condition(v, resolve) for v in value)
            if key == "Condition":
                return self.condition(value, resolve)
        return resolve(expr)

    def functions(self) -> dict[str, FunctionSpec]:
        """Every AWS::Serverless::Function with Globals applied (environment unresolved)."""
        globals_ = self.data.get("Globals", {}).get("Function", {})
        specs = {}
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties", {})
            env = dict(globals_.get("Environment", {}).get("Variables", {}))
            env.update(props.get("Environment", {}).get("Variables", {}))
            layers = props.get("Layers", globals_.get("Layers", []))
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                handler=str(props.get("Handler", globals_.get("Handler", "app.lambda_handler"))),
                timeout_s=int(props.get("Timeout", globals_.get("Timeout", 3))),
                memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
                environment=env,
                layers=[layer["Ref"] for layer in layers if isinstance(layer, dict) and "Ref" in layer],
                reserved_concurrency=props.get("ReservedConcurrentExecutions"),
            )
        return specs

    def _events(self, event_type: str) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") == event_type:
                    found.append((logical_id, event.get("Properties", {})))
        return found

    def api_routes(self) -> list[ApiRoute]:
        """Routes of `Type: Api` events; `Auth: Authorizer: NONE` makes a route open."""
        routes = []
        for function_id, props in self._events("Api"):
            authorizer = (props.get("Auth") or {}).get("Authorizer")
            routes.append(ApiRoute(function_id, str(props["Method"]).upper(), str(props["Path"]), authorizer != "NONE"))
        return routes

    def sqs_sources(self) -> list[SqsSource]:
        """SQS event source mappings."""
        sources = []
        for function_id, props in self._events("SQS"):
            queue = props["Queue"]
            queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) and "Fn::GetAtt" in queue else str(queue)
            sources.append(
                SqsSource(
                    function_id=function_id,
                    queue_id=queue_id,
                    batch_size=int(props.get("BatchSize", 10)),
                    batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    max_concurrency=int((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 2)),
                )
            )
        return sources

    def schedules(self, resolve: Callable[[Any], Any]) -> list[Schedule]:
        """Schedule and ScheduleV2 events."""
        found = [(fid, p) for fid, p in self._events("Schedule")] + [(fid, p) for fid, p in self._events("ScheduleV2")]
        return [Schedule(fid, str(resolve(p.get("Schedule") or p.get("ScheduleExpression")))) for fid, p in found]

    def authorizer(self) -> dict[str, Any]:
        """The Api's default authorizer: function id, identity headers, cache TTL."""
        for resource in self.resources.values():
            if resource.get("Type") != "AWS::Serverless::Api":
                continue
            auth = resource.get("Properties", {}).get("Auth", {})
            name = auth.get("DefaultAuthorizer")
            spec = auth.get("Authorizers", {}).get(name, {})
            arn = spec.get("FunctionArn", {})
            ref = arn.get("Ref", "") if isinstance(arn, dict) else ""
            function_id = ref.split(".", 1)[0] if ref else arn.get("Fn::GetAtt", [""])[0]
            identity = spec.get("Identity", {})
            return {
                "function_id": function_id,
                "headers": list(identity.get("Headers", ["Authorization"])),
                "ttl_s": int(identity.get("ReauthorizeEvery", 300)),
            }
        raise ValueError("template has no AWS::Serverless::Api with a default authorizer")

    def gateway_responses(self) -> dict[str, dict[str, Any]]:
        """The Api's GatewayResponses."""
        for resource in self.resources.values():
            if resource.get("Type") == "AWS::Serverless::Api":
                return dict(resource.get("Properties", {}).get("GatewayResponses", {}))
        return {}

    def stage_name(self) -> str:
        """The Api's stage name."""
        for resource in self.resources.values():
            if resource.get("Type") == "AWS::Serverless::Api":
                stage = resource.get("Properties", {}).get("StageName", "prod")
                return self.parameter(stage["Ref"]) if isinstance(stage, dict) else str(stage)
        return "prod"
