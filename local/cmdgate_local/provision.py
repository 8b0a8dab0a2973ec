"""Creates the template's tables, queues, topics and keys in moto, and resolves intrinsics to them.

The template is the only list of resources: nothing here names a table or a queue.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cmdgate_local.template import ACCOUNT_ID, REGION, STACK_NAME, Template

NO_VALUE = object()


class Provisioner:
    """Creates resources on first reference and remembers their physical ids and attributes."""

    def __init__(self, template: Template, session: Any) -> None:
        self._template = template
        self._session = session
        self._physical: dict[str, dict[str, str]] = {}

    # -- intrinsics -------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """Resolve Ref / GetAtt / Sub / Join / If / Select / Split in a template value."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(str(arg))
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self._get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in arg[1])
            if key == "Fn::If":
                branch = arg[1] if self._template.condition(arg[0], self.resolve) else arg[2]
                return self.resolve(branch)
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self._template.data.get("Parameters", {}):
            return self._template.parameter(name)
        logical_id, _, attribute = name.partition(".")
        # `!Ref Function.Version` / `.Alias`: SAM's qualified ARNs of AutoPublishAlias functions.
        return self.physical(logical_id)[attribute or "Ref"]

    def _get_att(self, logical_id: str, attribute: str) -> str:
        attributes = self.physical(logical_id)
        if attribute not in attributes:
            raise KeyError(f"{logical_id}.{attribute} is not available locally")
        return attributes[attribute]

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} renders as the text ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # -- resources --------------------------------------------------------
    def physical(self, logical_id: str) -> dict[str, str]:
        """Ref and attributes of a resource, creating it in moto the first time."""
        if logical_id not in self._physical:
            resource = self._template.resources.get(logical_id)
            if resource is None:
                raise KeyError(f"template has no resource {logical_id}")
            creator = getattr(self, "_create_" + resource["Type"].replace("::", "_"), None)
            if creator is None:
                self._physical[logical_id] = {"Ref": f"{STACK_NAME}-{logical_id}"}
            elif resource["Type"].startswith("AWS::Serverless::"):
                # Named only: resolving their properties would recurse (Api <-> Function events).
                self._physical[logical_id] = creator(logical_id, {})
            else:
                self._physical[logical_id] = creator(logical_id, self.resolve(resource.get("Properties", {})))
        return self._physical[logical_id]

    def provision_all(self) -> dict[str, dict[str, str]]:
        """Create every resource the local stack can emulate."""
        for logical_id, resource in self._template.resources.items():
            if hasattr(self, "_create_" + resource["Type"].replace("::", "_")):
                self.physical(logical_id)
        return dict(self._physical)

    def _create_AWS_DynamoDB_Table(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        client = self._session.client("dynamodb")
        name = props.get("TableName") or f"{STACK_NAME}-{logical_id}"
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("SSESpecification", {}).get("SSEEnabled"):
            kwargs["SSESpecification"] = {"Enabled": True}
        description = client.create_table(**kwargs)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            client.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        return {"Ref": name, "Arn": description["TableArn"]}

    def _create_AWS_SQS_Queue(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        client = self._session.client("sqs")
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        name = props.get("QueueName") or f"{STACK_NAME}-{logical_id}" + (".fifo" if fifo else "")
        attributes: dict[str, str] = {}
        for key, value in props.items():
            if key in ("QueueName", "Tags"):
                continue
            if key == "RedrivePolicy":
                attributes[key] = json.dumps({k: str(v) if k == "maxReceiveCount" else v for k, v in value.items()})
            elif isinstance(value, bool):
                attributes[key] = "true" if value else "false"
            else:
                attributes[key] = str(value)
        attributes.pop("SqsManagedSseEnabled", None)  # moto ignores it; keep the call portable
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _create_AWS_SNS_Topic(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        name = props.get("TopicName") or f"{STACK_NAME}-{logical_id}"
        arn = self._session.client("sns").create_topic(Name=name)["TopicArn"]
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}

    def _create_AWS_KMS_Key(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        metadata = self._session.client("kms").create_key(Description=str(props.get("Description", logical_id)))[
            "KeyMetadata"
        ]
        return {"Ref": metadata["KeyId"], "Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}

    def _create_AWS_Logs_LogGroup(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        name = props.get("LogGroupName") or f"/{STACK_NAME}/{logical_id}"
        return {"Ref": name, "Arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"}

    def _create_AWS_Serverless_Function(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        name = f"{STACK_NAME}-{logical_id}"
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        return {"Ref": name, "Arn": arn, "Version": f"{arn}:1", "Alias": f"{arn}:live"}

    def _create_AWS_Serverless_LayerVersion(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        return {"Ref": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{STACK_NAME}-{logical_id}:1"}

    def _create_AWS_Serverless_Api(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        return {"Ref": "local", "RootResourceId": "root"}
