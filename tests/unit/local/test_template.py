"""The template reader: routes, event sources, authorizer and functions as the local stack sees them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cmdgate_local.template import ApiRoute, Template


@pytest.fixture
def template(template_data: dict[str, Any]) -> Template:
    return Template(template_data)


def routes(template: Template) -> dict[tuple[str, str], ApiRoute]:
    return {(r.method, r.path): r for r in template.api_routes()}


def test_short_form_intrinsics_become_long_form(template_data: dict[str, Any]) -> None:
    resources = template_data["Resources"]
    redrive = resources["ExecutionsQueue"]["Properties"]["RedrivePolicy"]
    assert redrive == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ExecutionsDLQ", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert resources["ResilienceLayer"]["Properties"]["LayerName"] == {"Fn::Sub": "${AWS::StackName}-resilience"}
    assert template_data["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


def test_api_routes(template: Template) -> None:
    found = routes(template)
    assert found[("GET", "/v1/health")].authorized is False
    assert found[("GET", "/v1/openapi.json")].authorized is False
    run = found[("POST", "/v1/commands/{name}")]
    assert (run.function_id, run.authorized) == ("ApiFunction", True)
    assert found[("GET", "/v1/commands")].authorized
    assert found[("GET", "/v1/executions/{execution_id}")].authorized
    open_routes = {key for key, route in found.items() if not route.authorized}
    # Webhook deliveries carry no API key: their signature is the credential (checked by the api function).
    assert open_routes == {("GET", "/v1/health"), ("GET", "/v1/openapi.json"), ("POST", "/v1/webhooks/{source}")}


@pytest.mark.parametrize(
    ("path", "concrete", "params"),
    [
        ("/v1/commands/{name}", "/v1/commands/echo", {"name": "echo"}),
        ("/v1/commands/{name}", "/v1/commands/deploy.prod:eu", {"name": "deploy.prod:eu"}),
        ("/v1/commands/{name}", "/v1/commands/echo/", None),
        ("/v1/commands/{name}", "/v1/commands/a/b", None),
        ("/v1/commands/{name}", "/v1/commands/", None),
        ("/v1/commands/{name}", "/v1/commandsX/echo", None),
        ("/v1/commands", "/v1/commands", {}),
        ("/v1/commands", "/v1/commands/", None),
        ("/v1/commands", "/v1/command", None),
        ("/v1/openapi.json", "/v1/openapiXjson", None),
        ("/v1/executions/{execution_id}", "/v1/executions/abc123", {"execution_id": "abc123"}),
        ("/files/{proxy+}", "/files/a/b/c.txt", {"proxy": "a/b/c.txt"}),
        ("/files/{proxy+}", "/files/", None),
        ("/a/{x}/b/{y}", "/a/1/b/2", {"x": "1", "y": "2"}),
    ],
)
def test_route_matcher(path: str, concrete: str, params: dict[str, str] | None) -> None:
    found = ApiRoute("F", "GET", path, True).matcher().match(concrete)
    assert (found.groupdict() if found else None) == params


def test_sqs_sources(template: Template) -> None:
    sources = {(s.function_id, s.queue_id): s for s in template.sqs_sources()}
    worker = sources["WorkerFunction", "ExecutionsQueue"]
    assert worker.report_batch_item_failures
    assert (worker.batch_size, worker.batching_window_s, worker.max_concurrency) == (10, 1.0, 10)
    events = sources["EventProcessorFunction", "EventsQueue"]
    assert (events.report_batch_item_failures, events.max_concurrency) == (True, 5)
    callbacks = sources["EventProcessorFunction", "CallbacksQueue"]  # a second source of the same function
    assert (callbacks.report_batch_item_failures, callbacks.batch_size, callbacks.max_concurrency) == (True, 1, 5)


def test_authorizer(template: Template) -> None:
    assert template.authorizer() == {"function_id": "AuthorizerFunction", "headers": ["Authorization"], "ttl_s": 60}


def test_no_api_means_no_authorizer() -> None:
    with pytest.raises(ValueError, match="no AWS::Serverless::Api"):
        Template({"Resources": {}}).authorizer()


def test_functions_merge_globals(template: Template) -> None:
    functions = template.functions()
    assert {"AuthorizerFunction", "ApiFunction", "WorkerFunction", "EventProcessorFunction", "HealerFunction"} <= set(
        functions
    )
    api = functions["ApiFunction"]
    assert api.environment["EXECUTIONS_TABLE"] == {"Ref": "ExecutionsTable"}
    assert api.environment["EXECUTIONS_QUEUE_URL"] == {"Ref": "ExecutionsQueue"}
    assert api.environment["POWERTOOLS_SERVICE_NAME"] == "cmdgate"
    assert (api.timeout_s, api.memory_mb, api.handler) == (29, 1024, "app.lambda_handler")
    assert api.layers == ["ResilienceLayer", "CommandsLayer"]
    authorizer = functions["AuthorizerFunction"]
    assert authorizer.timeout_s == 5
    assert authorizer.environment["KEYS_TABLE"] == {"Ref": "KeysTable"}  # from Globals
    assert authorizer.environment["JWT_ISSUERS"] == {"Ref": "JwtIssuers"}  # its own
    assert functions["HealerFunction"].reserved_concurrency == 1
    assert functions["WorkerFunction"].reserved_concurrency is None


def test_function_environment_overrides_globals() -> None:
    data: dict[str, Any] = {
        "Globals": {"Function": {"Timeout": 7, "Environment": {"Variables": {"A": "global", "B": "global"}}}},
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Handler": "x.y", "Environment": {"Variables": {"B": "own", "C": "own"}}},
            },
            "G": {"Type": "AWS::Serverless::Function", "Properties": {"Timeout": 1}},
            "T": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        },
    }
    functions = Template(data).functions()
    assert set(functions) == {"F", "G"}
    assert functions["F"].environment == {"A": "global", "B": "own", "C": "own"}
    assert (functions["F"].timeout_s, functions["F"].handler) == (7, "x.y")
    assert (functions["G"].timeout_s, functions["G"].handler, functions["G"].memory_mb) == (
        1,
        "app.lambda_handler",
        128,
    )
    assert data["Globals"]["Function"]["Environment"]["Variables"] == {"A": "global", "B": "global"}


def test_parameters(template_data: dict[str, Any]) -> None:
    template = Template(template_data, {"MaxReceiveCount": "7"})
    assert template.parameter("MaxReceiveCount") == "7"
    assert template.parameter("StageName") == "prod"
    assert template.parameter("AlarmEmail") == ""
    with pytest.raises(KeyError):
        template.parameter("NoSuchParameter")


@pytest.mark.parametrize(("email", "expected"), [("", False), ("oncall@example.com", True)])
def test_conditions(template_data: dict[str, Any], email: str, expected: bool) -> None:
    template = Template(template_data, {"AlarmEmail": email})

    def resolve(value: Any) -> Any:
        return template.parameter(value["Ref"]) if isinstance(value, dict) else value

    assert template.condition("HasAlarmEmail", resolve) is expected


def test_stage_schedules_and_gateway_responses(template_data: dict[str, Any]) -> None:
    template = Template(template_data)
    assert template.stage_name() == "prod"
    assert Template(template_data, {"StageName": "dev"}).stage_name() == "dev"
    schedules = template.schedules(lambda v: template.parameter(v["Ref"]) if isinstance(v, dict) else v)
    assert [(s.function_id, s.expression) for s in schedules] == [("HealerFunction", "rate(5 minutes)")]
    responses = template.gateway_responses()
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        responses
    )
    assert responses["UNAUTHORIZED"]["ResponseParameters"]["Headers"]["WWW-Authenticate"] == "'Bearer'"


@pytest.mark.parametrize(
    ("response_type", "status"),
    [
        ("REQUEST_TOO_LARGE", 413),  # over 10 MB, and (reported) between Lambda's 6 MB and 10 MB
        ("BAD_GATEWAY", 502),
        ("API_CONFIGURATION_ERROR", 500),
        ("INTEGRATION_FAILURE", 504),
        ("DEFAULT_5XX", 502),
    ],
)
def test_the_gateway_answers_to_an_oversized_body_are_problems(
    template_data: dict[str, Any], response_type: str, status: int
) -> None:
    spec = Template(template_data).gateway_responses()[response_type]
    assert int(spec["StatusCode"]) == status
    assert spec["ResponseParameters"]["Headers"]["Content-Type"] == "'application/problem+json'"
    problem = json.loads(spec["ResponseTemplates"]["application/json"].replace("$context.requestId", "r"))
    assert (problem["status"], problem["request_id"]) == (status, "r")


def test_traces_never_carry_answers_or_error_texts(template_data: dict[str, Any]) -> None:
    """A trace must not hold a new API key, a state value or an exception quoting a secret param."""
    environment = template_data["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert environment["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"
