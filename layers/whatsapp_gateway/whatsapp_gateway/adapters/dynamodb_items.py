"""DynamoDB attribute values from and to plain Python, shared by the stores."""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def condition_failed(reason: Mapping[str, Any]) -> bool:
    return reason.get("Code") == "ConditionalCheckFailed"


def expression_values(**named: Any) -> dict[str, Any]:
    """``ExpressionAttributeValues`` from keyword arguments: ``at=1`` is ``:at``."""
    return {f":{name}": _serializer.serialize(value) for name, value in named.items()}


def to_value(value: Any) -> Any:
    return _serializer.serialize(json.loads(json.dumps(value), parse_float=Decimal))


def to_item(fields: Mapping[str, Any]) -> dict[str, Any]:
    # DynamoDB numbers are Decimals; JSON floats (a location's coordinates) are converted.
    plain = json.loads(json.dumps(fields), parse_float=Decimal)
    return {name: _serializer.serialize(value) for name, value in plain.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def from_epoch(seconds: Decimal | int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
