"""The Provisioner creates template.yaml's tables, queues, topics and keys in in-process moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cmdgate_local.provision import Provisioner
from cmdgate_local.template import ACCOUNT_ID, REGION, STACK_NAME, Template

EMULATED = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::KMS::Key")


def of_type(template_data: dict[str, Any], resource_type: str) -> list[str]:
    return [lid for lid, r in template_data["Resources"].items() if r["Type"] == resource_type]


def make(session: boto3.session.Session, template_data: dict[str, Any], **overrides: str) -> Provisioner:
    return Provisioner(Template(template_data, dict(overrides)), session)


@pytest.fixture(scope="class")
def provisioned(
    class_session: boto3.session.Session, template_data: dict[str, Any]
) -> tuple[Provisioner, dict[str, Any]]:
    # Provisioning takes ~0.7 s (moto makes an RSA key per KMS key): done once for the read-only tests.
    provisioner = make(class_session, template_data)
    return provisioner, provisioner.provision_all()


def redrive_of(session: boto3.session.Session, queue_url: str) -> dict[str, Any]:
    attributes = session.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    policy: dict[str, Any] = json.loads(attributes["RedrivePolicy"])
    return policy


class TestProvisionedOnce:
    """Read-only checks of one provisioning of the whole template."""

    def test_every_table_exists_with_the_template_key_schema(
        self,
        provisioned: tuple[Provisioner, dict[str, Any]],
        class_session: boto3.session.Session,
        template_data: dict[str, Any],
    ) -> None:
        _, physical = provisioned
        dynamodb = class_session.client("dynamodb")
        tables = of_type(template_data, "AWS::DynamoDB::Table")
        assert {"KeysTable", "ExecutionsTable", "IdempotencyTable", "ControlTable", "StateTable"} <= set(tables)
        assert set(dynamodb.list_tables()["TableNames"]) == {physical[t]["Ref"] for t in tables}
        for logical_id in tables:
            props = template_data["Resources"][logical_id]["Properties"]
            description = dynamodb.describe_table(TableName=physical[logical_id]["Ref"])["Table"]
            assert description["KeySchema"] == props["KeySchema"]
            assert description["TableArn"] == physical[logical_id]["Arn"]
            wanted_indexes = {i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])}
            assert {i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])} == wanted_indexes
            ttl = dynamodb.describe_time_to_live(TableName=physical[logical_id]["Ref"])["TimeToLiveDescription"]
            assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
            assert ttl["TimeToLiveStatus"] == "ENABLED"

    def test_every_queue_topic_and_key_exists(
        self,
        provisioned: tuple[Provisioner, dict[str, Any]],
        class_session: boto3.session.Session,
        template_data: dict[str, Any],
    ) -> None:
        _, physical = provisioned
        queues = of_type(template_data, "AWS::SQS::Queue")
        assert len(queues) == 8
        listed = set(class_session.client("sqs").list_queues()["QueueUrls"])
        assert listed == {physical[q]["Ref"] for q in queues}
        for fifo in ("StateSyncQueue", "StateSyncDLQ"):
            assert physical[fifo]["QueueName"].endswith(".fifo")
        topics = {t["TopicArn"] for t in class_session.client("sns").list_topics()["Topics"]}
        assert topics == {physical[t]["Ref"] for t in of_type(template_data, "AWS::SNS::Topic")}
        kms = class_session.client("kms")
        for key in of_type(template_data, "AWS::KMS::Key"):
            metadata = kms.describe_key(KeyId=physical[key]["Ref"])["KeyMetadata"]
            assert metadata["Arn"] == physical[key]["Arn"]

    def test_only_emulated_types_are_created(
        self, provisioned: tuple[Provisioner, dict[str, Any]], template_data: dict[str, Any]
    ) -> None:
        _, physical = provisioned
        alarms = of_type(template_data, "AWS::CloudWatch::Alarm")
        assert alarms
        assert not set(alarms) & set(physical)
        for resource_type in EMULATED:
            assert set(of_type(template_data, resource_type)) <= set(physical)

    def test_executions_queue_redrives_to_its_dlq(
        self, provisioned: tuple[Provisioner, dict[str, Any]], class_session: boto3.session.Session
    ) -> None:
        _, physical = provisioned
        policy = redrive_of(class_session, physical["ExecutionsQueue"]["Ref"])
        assert policy["deadLetterTargetArn"] == physical["ExecutionsDLQ"]["Arn"]
        assert policy["deadLetterTargetArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{STACK_NAME}-ExecutionsDLQ"
        assert int(policy["maxReceiveCount"]) == 3
        events = redrive_of(class_session, physical["EventsQueue"]["Ref"])
        assert events["deadLetterTargetArn"] == physical["EventsDLQ"]["Arn"]
        state = redrive_of(class_session, physical["StateSyncQueue"]["Ref"])
        assert (state["deadLetterTargetArn"], int(state["maxReceiveCount"])) == (physical["StateSyncDLQ"]["Arn"], 10)


def test_parameter_overrides_reach_the_queues(session: boto3.session.Session, template_data: dict[str, Any]) -> None:
    physical = make(session, template_data, MaxReceiveCount="5", WorkerVisibilityTimeoutS="7").provision_all()
    sqs = session.client("sqs")
    assert int(redrive_of(session, physical["ExecutionsQueue"]["Ref"])["maxReceiveCount"]) == 5
    assert int(redrive_of(session, physical["EventsQueue"]["Ref"])["maxReceiveCount"]) == 5
    assert int(redrive_of(session, physical["StateSyncQueue"]["Ref"])["maxReceiveCount"]) == 10
    attributes = sqs.get_queue_attributes(QueueUrl=physical["ExecutionsQueue"]["Ref"], AttributeNames=["All"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "7"


def test_a_reference_creates_what_it_needs_on_first_use(
    session: boto3.session.Session, template_data: dict[str, Any]
) -> None:
    provisioner = make(session, template_data)
    sqs = session.client("sqs")
    assert sqs.list_queues().get("QueueUrls", []) == []
    url = provisioner.resolve({"Ref": "ExecutionsQueue"})
    names = sorted(u.rsplit("/", 1)[1] for u in sqs.list_queues()["QueueUrls"])
    assert names == [f"{STACK_NAME}-ExecutionsDLQ", f"{STACK_NAME}-ExecutionsQueue"]
    assert provisioner.resolve({"Ref": "ExecutionsQueue"}) == url  # created once
    assert len(sqs.list_queues()["QueueUrls"]) == 2


def test_intrinsics(session: boto3.session.Session, template_data: dict[str, Any]) -> None:
    p = make(session, template_data, StageName="dev")
    queue_name = f"{STACK_NAME}-ExecutionsQueue"
    assert p.resolve({"Ref": "AWS::Region"}) == REGION
    assert p.resolve({"Ref": "AWS::AccountId"}) == ACCOUNT_ID
    assert p.resolve({"Ref": "StageName"}) == "dev"
    assert p.resolve({"Ref": "MaxReceiveCount"}) == "3"
    assert p.resolve({"Fn::Sub": "${AWS::StackName}-api"}) == f"{STACK_NAME}-api"
    assert p.resolve({"Fn::Sub": "${ApiFunction}:live"}) == f"{STACK_NAME}-ApiFunction:live"
    assert p.resolve({"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"}) == (
        f"https://local.execute-api.{REGION}.amazonaws.com/dev"
    )
    assert p.resolve({"Fn::Sub": ["${Name}-${AWS::Region}", {"Name": {"Ref": "StageName"}}]}) == f"dev-{REGION}"
    assert p.resolve({"Fn::Sub": "no variables"}) == "no variables"
    arn = p.resolve({"Fn::GetAtt": ["ExecutionsQueue", "Arn"]})
    assert arn == f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue_name}"
    assert p.resolve({"Fn::GetAtt": "ExecutionsQueue.Arn"}) == arn
    assert p.resolve({"Fn::Sub": "${ExecutionsQueue.Arn}"}) == arn
    assert p.resolve({"Fn::GetAtt": ["ExecutionsQueue", "QueueName"]}) == queue_name
    assert p.resolve({"Fn::Join": ["/", ["a", {"Ref": "StageName"}, "b"]]}) == "a/dev/b"
    assert p.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert p.resolve({"Fn::If": ["HasAlarmEmail", "yes", "no"]}) == "no"
    assert p.resolve(["a", {"Ref": "AWS::NoValue"}, "b"]) == ["a", "b"]
    assert p.resolve({"Keep": 1, "Drop": {"Ref": "AWS::NoValue"}}) == {"Keep": 1}
    assert p.resolve({"Fn::Sub": "${AWS::Partition}"}) == "aws"


def test_function_environment_resolves_to_real_resources(
    session: boto3.session.Session, template_data: dict[str, Any]
) -> None:
    p = make(session, template_data)
    environment = p.resolve(Template(template_data).functions()["WorkerFunction"].environment)
    assert environment["EXECUTIONS_TABLE"] in session.client("dynamodb").list_tables()["TableNames"]
    assert environment["EXECUTIONS_QUEUE_URL"] in session.client("sqs").list_queues()["QueueUrls"]
    assert environment["MAX_RECEIVE_COUNT"] == "3"
    assert environment["ALERTS_TOPIC_ARN"].startswith(f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:")


def test_unknown_references_fail_loudly(session: boto3.session.Session, template_data: dict[str, Any]) -> None:
    p = make(session, template_data)
    with pytest.raises(KeyError):
        p.resolve({"Ref": "NoSuchResource"})
    with pytest.raises(KeyError):
        p.resolve({"Fn::GetAtt": ["ExecutionsQueue", "NoSuchAttribute"]})
    with pytest.raises(KeyError):
        p.resolve({"Fn::GetAtt": ["ApiFunction", "Version.Version"]})


def test_sub_escape_renders_a_literal(session: boto3.session.Session, template_data: dict[str, Any]) -> None:
    p = make(session, template_data)
    assert p.resolve({"Fn::Sub": "${!Literal}-${AWS::Region}"}) == f"${{Literal}}-{REGION}"


def test_function_versions_and_aliases_resolve_to_qualified_arns(
    session: boto3.session.Session, template_data: dict[str, Any]
) -> None:
    p = make(session, template_data)
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{STACK_NAME}-ApiFunction"
    assert p.resolve({"Ref": "ApiFunction.Version"}) == f"{arn}:1"
    assert p.resolve({"Ref": "ApiFunction.Alias"}) == f"{arn}:live"
    assert p.resolve({"Ref": "ApiFunction"}) == f"{STACK_NAME}-ApiFunction"
    hook = p.resolve(Template(template_data).functions()["PreTrafficHookFunction"].environment)
    assert hook["API_FUNCTION_VERSION_ARN"] == f"{arn}:1"
