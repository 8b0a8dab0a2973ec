"""moto_patches: transactions roll back item by item, not from copies of whole tables; SQS scans a queue once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.backends import get_backend
from moto.dynamodb.models.dynamo_type import Item

from cmdgate_local import moto_patches

TABLE = "patched"


@pytest.fixture
def dynamodb(session: boto3.session.Session) -> Iterator[Any]:
    moto_patches.install()
    client = session.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName="flat",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield client
    moto_patches.uninstall()


def backend() -> Any:
    return get_backend("dynamodb")["123456789012"]["us-east-1"]


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def items(client: Any) -> dict[tuple[str, str], dict[str, Any]]:
    found = client.scan(TableName=TABLE)["Items"]
    return {(item["pk"]["S"], item["sk"]["S"]): item for item in found}


def test_a_cancelled_transaction_leaves_every_named_item_as_it_was(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item={**key("k", "register"), "version": {"N": "1"}})
    dynamodb.put_item(TableName=TABLE, Item={**key("k", "v1"), "note": {"S": "old"}})
    dynamodb.put_item(TableName="flat", Item={"id": {"S": "lease"}, "holder": {"S": "other"}})
    before = items(dynamodb)
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": key("k", "register"),
                        "UpdateExpression": "SET version = :v",
                        "ExpressionAttributeValues": {":v": {"N": "2"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": {**key("k", "v2"), "note": {"S": "new"}}}},
                {"Delete": {"TableName": TABLE, "Key": key("k", "v1")}},
                {"Put": {"TableName": "flat", "Item": {"id": {"S": "fresh"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "flat",
                        "Key": {"id": {"S": "lease"}},
                        "ConditionExpression": "attribute_not_exists(holder)",
                    }
                },
            ]
        )
    assert items(dynamodb) == before
    assert "Item" not in dynamodb.get_item(TableName="flat", Key={"id": {"S": "fresh"}})


def test_a_transaction_that_passes_applies_every_part(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item={**key("k", "register"), "version": {"N": "1"}})
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key("k", "register"),
                    "UpdateExpression": "SET version = :v",
                    "ConditionExpression": "version = :read",
                    "ExpressionAttributeValues": {":v": {"N": "2"}, ":read": {"N": "1"}},
                }
            },
            {"Put": {"TableName": TABLE, "Item": {**key("k", "v2")}}},
        ]
    )
    assert items(dynamodb)[("k", "register")]["version"] == {"N": "2"}
    assert ("k", "v2") in items(dynamodb)


def test_a_transaction_copies_the_items_it_names_not_the_tables(dynamodb: Any) -> None:
    for n in range(50):
        dynamodb.put_item(TableName=TABLE, Item={**key(f"other{n}", "register"), "version": {"N": "1"}})
    table = backend().tables[TABLE]
    copied: list[object] = []
    original = Item.__deepcopy__

    def counting(self: Any, memo: dict[int, Any]) -> Any:
        copied.append(self)
        return original(self, memo)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Item, "__deepcopy__", counting)
        with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": TABLE, "Item": {**key("k", "v1")}}},
                    {
                        "ConditionCheck": {
                            "TableName": TABLE,
                            "Key": key("other0", "register"),
                            "ConditionExpression": "attribute_not_exists(version)",
                        }
                    },
                ]
            )
    # moto alone deep-copies all 50 items once per part (100); item by item, only the one that exists.
    assert len(copied) == 1
    assert backend().tables[TABLE] is table
    assert ("k", "v1") not in items(dynamodb)


def test_moto_keeps_no_model_instance_it_has_dropped(dynamodb: Any) -> None:
    tracked = len(Item.instances_tracked)  # type: ignore[attr-defined]
    for n in range(20):
        dynamodb.put_item(TableName=TABLE, Item={**key(f"k{n}", "register"), "version": {"N": "1"}})
        dynamodb.query(
            TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": f"k{n}"}}
        )
        dynamodb.scan(TableName=TABLE)
    assert len(Item.instances_tracked) == tracked  # type: ignore[attr-defined]


def test_install_is_idempotent_and_uninstall_restores_moto(dynamodb: Any) -> None:
    patched = type(backend()).transact_write_items
    moto_patches.install()
    assert type(backend()).transact_write_items is patched
    moto_patches.uninstall()
    assert not moto_patches.installed()
    moto_patches.install()
    assert moto_patches.installed()


def queue_counts(sqs: Any, url: str) -> tuple[str, str, str]:
    names = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return attributes[names[0]], attributes[names[1]], attributes[names[2]]


def fill(sqs: Any, name: str) -> str:
    """A queue with 3 in flight, 2 delayed and 4 visible messages."""
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"in flight {i}")
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3)["Messages"]) == 3
    for i in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=f"delayed {i}", DelaySeconds=600)
    for i in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=f"visible {i}")
    return str(url)


def test_sqs_counts_and_receives_are_moto_s_own(session: boto3.session.Session) -> None:
    sqs = session.client("sqs")
    moto_patches.uninstall()
    expected = queue_counts(sqs, fill(sqs, "unpatched"))
    moto_patches.install()
    try:
        url = fill(sqs, "patched")
        assert queue_counts(sqs, url) == expected == ("4", "3", "2")
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(m["Body"] for m in got) == [f"visible {i}" for i in range(4)]
        assert queue_counts(sqs, url) == ("0", "7", "2")
    finally:
        moto_patches.uninstall()


def test_a_receive_no_longer_computes_every_queue_attribute(
    session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sqs.models import Queue

    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="scanned")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    computed: list[int] = []
    every_attribute = Queue.__dict__["attributes"]

    def counted(queue: Any) -> Any:
        computed.append(1)
        return every_attribute.fget(queue)

    monkeypatch.setattr(Queue, "attributes", property(counted))
    moto_patches.uninstall()
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]) == 2
    assert len(computed) >= 2  # moto: every attribute (each count a scan of the queue), per message received
    computed.clear()
    moto_patches.install()
    try:
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3)["Messages"]) == 3
        assert computed == []
    finally:
        moto_patches.uninstall()


def test_a_message_past_its_retention_is_not_received(session: boto3.session.Session) -> None:
    sqs = session.client("sqs")
    moto_patches.install()
    try:
        url = sqs.create_queue(QueueName="retained", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="old")
        queue = get_backend("sqs")["123456789012"]["us-east-1"].get_queue("retained")
        message: Any = queue._messages[0]
        message.sent_timestamp -= 61_000  # sent 61 s ago
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
        sqs.send_message(QueueUrl=url, MessageBody="new")
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["new"]
    finally:
        moto_patches.uninstall()
