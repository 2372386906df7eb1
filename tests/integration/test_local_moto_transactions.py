"""The local moto server's TransactWriteItems (infra/local/moto.py): moto's own semantics (all
or nothing, cancellation reasons in order, ReturnValuesOnConditionCheckFailure, the streams'
records), at the cost of the items a transaction names, not of the tables it touches."""

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from infra.local.moto import keep_transactions_item_sized

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import StreamSpecificationTypeDef

MESSAGES = "messages"  # a hash key
WINDOWS = "windows"  # a hash key and a range key
LARGE_TABLE = 5_000


@pytest.fixture(params=["moto's own", "item-sized"])
def dynamodb(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Two streamed tables on moto, with moto's own transactions or the local server's: the
    tests of semantics hold for both, so the local server keeps moto's."""
    with _streamed_tables(monkeypatch, item_sized=request.param == "item-sized") as client:
        yield client


@pytest.fixture
def item_sized_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with _streamed_tables(monkeypatch, item_sized=True) as client:
        yield client


@contextmanager
def _streamed_tables(monkeypatch: pytest.MonkeyPatch, *, item_sized: bool) -> Iterator[Any]:
    # moto's own transaction is put back after the test, whatever it installs.
    monkeypatch.setattr(
        DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items
    )
    if item_sized:
        keep_transactions_item_sized()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        streamed: StreamSpecificationTypeDef = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        client.create_table(
            TableName=MESSAGES,
            KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=streamed,
        )
        client.create_table(
            TableName=WINDOWS,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=streamed,
        )
        client.put_item(TableName=MESSAGES, Item=_message("m1", "queued"))
        client.put_item(TableName=WINDOWS, Item=_window("p1", 10))
        client.put_item(TableName=WINDOWS, Item=_window("p2", 10))
        yield client


def _message(message_id: str, status: str) -> dict[str, Any]:
    return {"message_id": {"S": message_id}, "status": {"S": status}}


def _window(pair: str, expires_at: int) -> dict[str, Any]:
    return {"pk": {"S": pair}, "sk": {"S": "window"}, "expires_at": {"N": str(expires_at)}}


def _put(table: str, item: dict[str, Any], **condition: Any) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": item, **condition}}


def _extend_window(pair: str, to: int, **condition: Any) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": WINDOWS,
            "Key": {"pk": {"S": pair}, "sk": {"S": "window"}},
            "UpdateExpression": "SET expires_at = :to",
            "ExpressionAttributeValues": {":to": {"N": str(to)}},
            **condition,
        }
    }


def _contents(client: Any) -> dict[str, list[dict[str, Any]]]:
    """Every item of both tables, and every record of their streams (without their ids and
    times)."""
    # botocore's account-based endpoint for streams is one moto does not serve.
    streams = boto3.client(
        "dynamodbstreams",
        region_name="us-east-1",
        config=Config(account_id_endpoint_mode="disabled"),
    )
    contents: dict[str, list[dict[str, Any]]] = {}
    for table in (MESSAGES, WINDOWS):
        items = client.scan(TableName=table)["Items"]
        contents[table] = sorted(items, key=repr)
        arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        contents[f"{table} stream"] = [
            {
                "event": record["eventName"],
                "keys": record["dynamodb"]["Keys"],
                "old": record["dynamodb"].get("OldImage"),
                "new": record["dynamodb"].get("NewImage"),
            }
            for record in records
        ]
    return contents


def _cancelled(client: Any, transact_items: list[dict[str, Any]]) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=transact_items)
    return dict(raised.value.response)


def test_a_failed_condition_cancels_every_write_with_its_reasons_in_order(dynamodb: Any) -> None:
    before = _contents(dynamodb)

    answer = _cancelled(
        dynamodb,
        [
            _put(MESSAGES, _message("m2", "received")),  # a new item
            _extend_window("p1", 20),  # an update
            _extend_window(  # the failed condition, before writes that moto then makes
                "p2",
                5,
                ConditionExpression="expires_at <= :to",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ),
            _extend_window("p3", 30),  # an update that creates its item
            {"Delete": {"TableName": MESSAGES, "Key": {"message_id": {"S": "m1"}}}},
        ],
    )

    assert answer["Error"]["Code"] == "TransactionCanceledException"
    reasons = answer["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == [
        "None",
        "None",
        "ConditionalCheckFailed",
        "None",
        "None",
    ]
    assert reasons[2]["Item"] == _window("p2", 10)
    assert _contents(dynamodb) == before


def test_a_key_named_twice_cancels_the_writes_already_made(dynamodb: Any) -> None:
    before = _contents(dynamodb)

    answer = _cancelled(
        dynamodb,
        [_put(MESSAGES, _message("m2", "received")), _put(MESSAGES, _message("m2", "sent"))],
    )

    assert answer["Error"]["Code"] == "ValidationException"
    assert _contents(dynamodb) == before


def test_a_transaction_whose_conditions_hold_makes_every_write(dynamodb: Any) -> None:
    before = _contents(dynamodb)

    dynamodb.transact_write_items(
        TransactItems=[
            _put(
                MESSAGES,
                _message("m2", "received"),
                ConditionExpression="attribute_not_exists(message_id)",
            ),
            _extend_window("p1", 20, ConditionExpression="expires_at <= :to"),
            {
                "ConditionCheck": {
                    "TableName": MESSAGES,
                    "Key": {"message_id": {"S": "m1"}},
                    "ConditionExpression": "attribute_exists(message_id)",
                }
            },
            {"Delete": {"TableName": WINDOWS, "Key": {"pk": {"S": "p2"}, "sk": {"S": "window"}}}},
        ]
    )

    after = _contents(dynamodb)
    assert after[MESSAGES] == sorted(
        [_message("m1", "queued"), _message("m2", "received")], key=repr
    )
    assert after[WINDOWS] == [_window("p1", 20)]
    assert [record["event"] for record in after[f"{MESSAGES} stream"]] == [
        *(record["event"] for record in before[f"{MESSAGES} stream"]),
        "INSERT",
    ]
    assert [record["event"] for record in after[f"{WINDOWS} stream"]] == [
        *(record["event"] for record in before[f"{WINDOWS} stream"]),
        "MODIFY",
        "REMOVE",
    ]


def _objects_deep_copied(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Counts every object copy.deepcopy copies from now on; the count so far, reset."""
    deepcopy = copy.deepcopy
    copied = [0]

    def counting(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if memo is not None:  # within a deep copy already counted
            return deepcopy(value, memo)
        memo = {}
        duplicate = deepcopy(value, memo)
        copied[0] += len(memo) - (id(memo) in memo)  # less deepcopy's own keep-alive list
        return duplicate

    monkeypatch.setattr(copy, "deepcopy", counting)

    def taken() -> int:
        count, copied[0] = copied[0], 0
        return count

    return taken


def test_a_transaction_copies_no_more_of_a_large_table_than_of_a_small_one(
    item_sized_dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb = item_sized_dynamodb
    copies = _objects_deep_copied(monkeypatch)

    def copies_of_a_transaction(round_: int) -> tuple[int, int]:
        """Objects copied by a transaction that writes, then by one that is cancelled."""
        copies()
        dynamodb.transact_write_items(
            TransactItems=[
                _put(MESSAGES, _message(f"new-{round_}", "received")),
                _extend_window("p1", 20 + round_),
            ]
        )
        written = copies()
        _cancelled(
            dynamodb,
            [
                _put(MESSAGES, _message(f"cancelled-{round_}", "received")),
                _extend_window("p2", 5, ConditionExpression="expires_at <= :to"),
            ],
        )
        return written, copies()

    small = copies_of_a_transaction(1)
    for start in range(0, LARGE_TABLE, 25):
        dynamodb.batch_write_item(
            RequestItems={
                MESSAGES: [
                    {"PutRequest": {"Item": _message(f"stored-{index}", "read")}}
                    for index in range(start, start + 25)
                ]
            }
        )
    large = copies_of_a_transaction(2)

    assert dynamodb.describe_table(TableName=MESSAGES)["Table"]["ItemCount"] > LARGE_TABLE
    assert large == small
