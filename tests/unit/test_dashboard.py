"""The operations dashboard names only metrics that exist: cmdgate's own as the code emits them
(namespace, name, dimensions), AWS's for resources of this template - so it cannot silently go stale."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = [
    *sorted((ROOT / "functions").rglob("*.py")),
    *sorted((ROOT / "layers" / "resilience" / "cmdgate").rglob("*.py")),
]
NAMESPACE = "cmdgate"
# Powertools adds the `service` dimension (POWERTOOLS_SERVICE_NAME) to every metric it emits.
DEFAULT_DIMENSIONS = frozenset({"service"})
AWS_METRICS = {
    "AWS/ApiGateway": {"Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"},
    "AWS/Lambda": {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"},
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"},
}
_SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]+)\} MetricName=\"(?P<name>[^\"]+)\"'")
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Emitted:
    """A metric the code emits: its name (or the constant start of an f-string name) and dimension names."""

    name: str
    is_prefix: bool
    dimensions: frozenset[str]


@dataclass(frozen=True)
class Named:
    """A metric the dashboard names: namespace, name, dimensions (values when the row gives them)."""

    namespace: str
    name: str
    dimensions: dict[str, str | None]


def _constant_name(node: ast.expr | None) -> tuple[str, bool] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, False
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value), True
    return None


def _metric_name(call: ast.Call) -> tuple[str, bool] | None:
    for keyword in call.keywords:
        if keyword.arg == "name":
            return _constant_name(keyword.value)
    return _constant_name(call.args[0]) if call.args else None


def _called(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def _dict_keys(node: ast.expr | None, function: ast.AST | None) -> set[str]:
    if isinstance(node, ast.Name) and function is not None:  # `default_dimensions=dimensions`: its literal
        variable = node.id
        for assign in ast.walk(function):
            if isinstance(assign, ast.Assign) and any(getattr(t, "id", None) == variable for t in assign.targets):
                node = assign.value
    if isinstance(node, ast.Dict):
        return {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return set()


def emitted_metrics() -> list[Emitted]:
    """Every add_metric / single_metric call in the functions and the layer, with its dimensions."""
    found: list[Emitted] = []
    for path in CODE:
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _called(node) not in ("add_metric", "single_metric"):
                continue
            named = _metric_name(node)
            assert named is not None, f"{path}:{node.lineno}: a metric name the dashboard test cannot read"
            dimensions = set(DEFAULT_DIMENSIONS)
            owner = next((f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or 0)), None)
            if _called(node) == "single_metric":
                default = next((k.value for k in node.keywords if k.arg == "default_dimensions"), None)
                dimensions |= _dict_keys(default, owner)
                block = next(
                    (
                        w
                        for w in ast.walk(tree)
                        if isinstance(w, ast.With) and any(i.context_expr is node for i in w.items)
                    ),
                    None,
                )
                for inner in ast.walk(block) if block is not None else ():
                    if isinstance(inner, ast.Call) and _called(inner) == "add_dimension":
                        dimensions |= {
                            str(k.value.value)
                            for k in inner.keywords
                            if k.arg == "name" and isinstance(k.value, ast.Constant)
                        }
            found.append(Emitted(named[0], named[1], frozenset(dimensions)))
    return found


def string_literals() -> set[str]:
    """Every string constant of the code: the values an f-string metric name or a dimension can take."""
    return {
        node.value
        for path in CODE
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def named_metrics(body: dict[str, Any]) -> Iterator[Named]:
    """Each metric row and SEARCH expression of the dashboard's metric widgets."""
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row, dict):
                found = _SEARCH.search(row.get("expression", ""))
                assert found, f"unreadable expression {row}"
                namespace, *dimensions = found.group("schema").split(",")
                yield Named(namespace, found.group("name"), dict.fromkeys(dimensions))
                continue
            fields = [f for f in row if isinstance(f, str)]
            namespace, name, pairs = fields[0], fields[1], fields[2:]
            yield Named(namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)))


@pytest.fixture(scope="module")
def body(template_data: dict[str, Any]) -> dict[str, Any]:
    text = template_data["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return dict(json.loads(text))  # every ${...} sits inside a JSON string


@pytest.fixture(scope="module")
def named(body: dict[str, Any]) -> list[Named]:
    return list(named_metrics(body))


def test_the_scanner_sees_what_the_code_emits() -> None:
    metrics = emitted_metrics()
    assert Emitted("HandlerLatency", False, frozenset({"service", "ExecutedVersion"})) in metrics
    assert Emitted("CommandExecutions", False, frozenset({"service", "command", "status"})) in metrics
    assert Emitted("Healer_", True, DEFAULT_DIMENSIONS) in metrics


def test_every_cmdgate_metric_on_the_dashboard_is_emitted_with_those_dimensions(
    named: list[Named], template_data: dict[str, Any]
) -> None:
    emitted, literals = emitted_metrics(), string_literals()
    service = template_data["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    ours = [m for m in named if m.namespace == NAMESPACE]
    assert ours
    assert template_data["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    for metric in ours:
        matches = [
            e
            for e in emitted
            if e.dimensions == frozenset(metric.dimensions)
            and (
                e.name == metric.name
                or (e.is_prefix and metric.name.startswith(e.name) and metric.name[len(e.name) :] in literals)
            )
        ]
        assert matches, f"the dashboard names {metric}, which no code emits with exactly these dimensions"
        assert metric.dimensions.get("service") in (None, service)
        for dimension, value in metric.dimensions.items():
            assert value is None or dimension == "service" or value in literals, (
                f"{metric}: no code sets {dimension}={value}"
            )


def test_every_aws_metric_on_the_dashboard_is_one_of_this_templates_resources(
    named: list[Named], template_data: dict[str, Any]
) -> None:
    resources = template_data["Resources"]
    api_name = resources["Api"]["Properties"]["Name"]["Fn::Sub"]
    for metric in (m for m in named if m.namespace != NAMESPACE):
        assert metric.name in AWS_METRICS.get(metric.namespace, set()), metric
        for dimension, value in metric.dimensions.items():
            reference = _PLACEHOLDER.fullmatch(value or "")
            if dimension == "ApiName":
                assert value == api_name
            elif dimension == "Stage":
                assert value == "${StageName}"
            elif dimension == "FunctionName":
                assert reference and resources[reference.group(1)]["Type"] == "AWS::Serverless::Function", metric
            elif dimension == "QueueName":
                assert reference and reference.group(1).endswith(".QueueName"), metric
                assert resources[reference.group(1).split(".")[0]]["Type"] == "AWS::SQS::Queue", metric
            else:
                raise AssertionError(f"{metric}: dimension {dimension} is not checked")


def test_every_function_and_queue_has_its_line(named: list[Named], template_data: dict[str, Any]) -> None:
    resources = template_data["Resources"]
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    queues = {k for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue"}
    throttled = {m.dimensions["FunctionName"] for m in named if m.name == "Throttles"}
    depth = {m.dimensions["QueueName"] for m in named if m.name == "ApproximateNumberOfMessagesVisible"}
    age = {m.dimensions["QueueName"] for m in named if m.name == "ApproximateAgeOfOldestMessage"}
    assert throttled == {f"${{{f}}}" for f in functions}
    assert depth == {f"${{{q}.QueueName}}" for q in queues}
    assert age == {f"${{{q}.QueueName}}" for q in queues if not q.endswith("DLQ")}


def test_the_dashboard_covers_what_on_call_watches(named: list[Named]) -> None:
    names = {m.name for m in named}
    assert {"Count", "4XXError", "5XXError", "RouteLatency", "RateLimitRefused", "BreakerStateChanges"} <= names
    assert {"GistSyncLag", "GistWriteBudgetLeft", "Callbacks_delivered", "Callbacks_abandoned"} <= names
    assert any(name.startswith("Healer_") for name in names)
