"""The gateway's state in DynamoDB.

Windows table: one item per (sender, contact, window kind), ``expires_at`` (epoch seconds) its
TTL attribute; the contact's opt-out state; and, in a partition of their own without TTL, the
record of every conversation opening (what Meta charges for). Messages table: one item per
message, keyed by its id (Twilio's MessageSid for inbound messages).

Every read decides open/closed with the domain rules at ``now``: TTL deletes expired items days
late, so an item's presence means nothing.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.opt_out import OptChange
from whatsapp_gateway.domain.windows import (
    Category,
    ContactState,
    ConversationWindow,
    ServiceWindow,
)
from whatsapp_gateway.inbound import InboundRecord
from whatsapp_gateway.models.inbound import InboundMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

SERVICE_WINDOW = "service_window"
CONVERSATION = "conversation#"
OPT_OUT = "opt_out"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class GatewayStore:
    def __init__(self, client: "DynamoDBClient", windows_table: str, messages_table: str) -> None:
        self._client = client
        self._windows = windows_table
        self._messages = messages_table

    def contact_state(self, sender: Address, contact: Address) -> ContactState:
        """Every window item of the pair, in one query (paginated only in theory: a pair has
        at most six items)."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self._windows,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _pair_key(sender, contact)}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**query)
            items.extend(_from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return _contact_state(items)

    def record_inbound(
        self,
        message: InboundMessage,
        *,
        received_at: datetime,
        idempotency_token: str | None,
        service_window: ServiceWindow,
        opt_change: OptChange | None,
    ) -> InboundRecord:
        """Records the message once per MessageSid, and in the same transaction moves the
        pair's service window forward and applies an opt-out change.

        The window and the opt-out state only move forward in time: when a newer message got
        there first, their conditions fail and the message is recorded without them.
        """
        pair = _pair_key(message.to, message.from_)
        message_item = {
            "message_id": message.message_sid,
            "direction": "inbound",
            "account_sid": message.account_sid,
            "sender": message.to.whatsapp,
            "contact": message.from_.whatsapp,
            "received_at": _iso(received_at),
            "status": "received",
            "events_published": False,
            "inbound": message.model_dump(mode="json", exclude_none=True, by_alias=False),
        }
        if idempotency_token:
            message_item["twilio_idempotency_token"] = idempotency_token
        record: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._messages,
                "Item": _to_item(message_item),
                "ConditionExpression": "attribute_not_exists(message_id)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        forward_only = [self._service_window_update(pair, service_window, message.message_sid)]
        if opt_change is not None:
            forward_only.append(
                self._opt_out_update(pair, opt_change, received_at, message.message_sid)
            )
        while True:
            try:
                self._client.transact_write_items(TransactItems=[record, *forward_only])
            except self._client.exceptions.TransactionCanceledException as error:
                reasons = error.response.get("CancellationReasons", [])
                if reasons and _condition_failed(reasons[0]):
                    return _existing_inbound(_from_item(reasons[0].get("Item", {})), received_at)
                overtaken = [_condition_failed(reason) for reason in reasons[1:]]
                if not any(overtaken) or len(overtaken) != len(forward_only):
                    raise
                forward_only = [
                    u for u, late in zip(forward_only, overtaken, strict=True) if not late
                ]
                continue
            return InboundRecord(received_at=received_at, duplicate=False, events_published=False)

    def _service_window_update(
        self, pair: str, window: ServiceWindow, message_id: str
    ) -> "TransactWriteItemTypeDef":
        return {
            "Update": {
                "TableName": self._windows,
                "Key": _key(pair, SERVICE_WINDOW),
                "UpdateExpression": "SET expires_at = :expires, last_inbound_at = :at, "
                "message_id = :message",
                "ConditionExpression": "attribute_not_exists(expires_at) OR expires_at <= :expires",
                "ExpressionAttributeValues": _values(
                    expires=_epoch(window.expires_at),
                    at=_epoch(window.last_inbound_at),
                    message=message_id,
                ),
            }
        }

    def _opt_out_update(
        self, pair: str, change: OptChange, at: datetime, message_id: str
    ) -> "TransactWriteItemTypeDef":
        return {
            "Update": {
                "TableName": self._windows,
                "Key": _key(pair, OPT_OUT),
                "UpdateExpression": "SET opted_out = :opted_out, changed_at = :at, "
                "message_id = :message",
                "ConditionExpression": "attribute_not_exists(changed_at) OR changed_at <= :at",
                "ExpressionAttributeValues": _values(
                    opted_out=change is OptChange.OPTED_OUT, at=_epoch(at), message=message_id
                ),
            }
        }

    def mark_events_published(self, message_id: str) -> None:
        self._client.update_item(
            TableName=self._messages,
            Key={"message_id": {"S": message_id}},
            UpdateExpression="SET events_published = :true",
            ExpressionAttributeValues={":true": {"BOOL": True}},
        )

    def open_conversation(
        self, sender: Address, contact: Address, window: ConversationWindow
    ) -> bool:
        """Opens the pair's conversation window of ``window.category`` unless one is still open
        at ``window.opened_at``; records the opening. True when this call opened it."""
        pair = _pair_key(sender, contact)
        opened_at = _epoch(window.opened_at)
        fields = {
            "category": window.category.value,
            "opened_at": opened_at,
            "expires_at": _epoch(window.expires_at),
            "message_id": window.message_id,
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._windows,
                            "Item": _to_item(
                                {"pk": pair, "sk": CONVERSATION + window.category, **fields}
                            ),
                            "ConditionExpression": "attribute_not_exists(pk) "
                            "OR expires_at <= :opened_at",
                            "ExpressionAttributeValues": _values(opened_at=opened_at),
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._windows,
                            "Item": _to_item(
                                {
                                    "pk": f"{pair}#openings",
                                    "sk": f"{_iso(window.opened_at)}#{window.category}",
                                    "sender": sender.whatsapp,
                                    "contact": contact.whatsapp,
                                    **fields,
                                }
                            ),
                        }
                    },
                ]
            )
        except self._client.exceptions.TransactionCanceledException as error:
            if _condition_failed(error.response.get("CancellationReasons", [{}])[0]):
                return False
            raise
        return True

    def conversation_openings(self, sender: Address, contact: Address) -> list[ConversationWindow]:
        """Every conversation window ever opened for the pair, oldest first."""
        page = self._client.query(
            TableName=self._windows,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{_pair_key(sender, contact)}#openings"}},
        )
        return [_conversation(_from_item(item)) for item in page.get("Items", [])]


def _condition_failed(reason: Mapping[str, Any]) -> bool:
    return reason.get("Code") == "ConditionalCheckFailed"


def _pair_key(sender: Address, contact: Address) -> str:
    return f"{sender.whatsapp}#{contact.whatsapp}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _values(**values: Any) -> dict[str, Any]:
    return {f":{name}": _serializer.serialize(value) for name, value in values.items()}


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    # DynamoDB numbers are Decimals; JSON floats (a location's coordinates) are converted.
    plain = json.loads(json.dumps(values), parse_float=Decimal)
    return {name: _serializer.serialize(value) for name, value in plain.items()}


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _datetime(epoch: Decimal | int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _existing_inbound(item: dict[str, Any], received_at: datetime) -> InboundRecord:
    stored = item.get("received_at")
    return InboundRecord(
        received_at=datetime.fromisoformat(stored) if stored else received_at,
        duplicate=True,
        events_published=bool(item.get("events_published", True)),
    )


def _conversation(item: dict[str, Any]) -> ConversationWindow:
    return ConversationWindow(
        category=Category(item["category"]),
        opened_at=_datetime(item["opened_at"]),
        expires_at=_datetime(item["expires_at"]),
        message_id=item["message_id"],
    )


def _contact_state(items: list[dict[str, Any]]) -> ContactState:
    service_window = None
    conversations = []
    opted_out = False
    for item in items:
        kind = item["sk"]
        if kind == SERVICE_WINDOW:
            service_window = ServiceWindow(
                last_inbound_at=_datetime(item["last_inbound_at"]),
                expires_at=_datetime(item["expires_at"]),
            )
        elif kind.startswith(CONVERSATION):
            conversations.append(_conversation(item))
        elif kind == OPT_OUT:
            opted_out = bool(item["opted_out"])
    return ContactState(
        service_window=service_window,
        conversations=tuple(conversations),
        opted_out=opted_out,
    )
