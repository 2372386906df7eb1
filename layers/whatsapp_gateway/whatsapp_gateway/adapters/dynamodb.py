"""The gateway's state in DynamoDB.

Windows table: one item per (sender, contact, window kind), ``expires_at`` (epoch seconds) its
TTL attribute; the contact's opt-out state; and, in a partition of their own without TTL, the
record of every conversation opening (what Meta charges for). Messages table: one item per
message, keyed by its id (Twilio's MessageSid for inbound messages).

Every read decides open/closed with the domain rules at ``now``: TTL deletes expired items days
late, so an item's presence means nothing.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from whatsapp_gateway.adapters.dynamodb_items import (
    condition_failed,
    epoch,
    expression_values,
    from_epoch,
    from_item,
    iso,
    to_item,
)
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
            items.extend(from_item(item) for item in page.get("Items", []))
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
            "received_at": iso(received_at),
            "status": "received",
            "events_published": False,
            "inbound": message.model_dump(mode="json", exclude_none=True, by_alias=False),
        }
        if idempotency_token:
            message_item["twilio_idempotency_token"] = idempotency_token
        record: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._messages,
                "Item": to_item(message_item),
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
                if reasons and condition_failed(reasons[0]):
                    return _existing_inbound(from_item(reasons[0].get("Item", {})), received_at)
                overtaken = [condition_failed(reason) for reason in reasons[1:]]
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
                "ExpressionAttributeValues": expression_values(
                    expires=epoch(window.expires_at),
                    at=epoch(window.last_inbound_at),
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
                "ExpressionAttributeValues": expression_values(
                    opted_out=change is OptChange.OPTED_OUT, at=epoch(at), message=message_id
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
        at ``window.opened_at``; records the opening. True when ``window.message_id`` opened it
        (this call, or an earlier delivery of the same callback)."""
        pair = _pair_key(sender, contact)
        opened_at = epoch(window.opened_at)
        fields = {
            "category": window.category.value,
            "opened_at": opened_at,
            "expires_at": epoch(window.expires_at),
            "message_id": window.message_id,
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._windows,
                            "Item": to_item(
                                {"pk": pair, "sk": CONVERSATION + window.category, **fields}
                            ),
                            "ConditionExpression": "attribute_not_exists(pk) "
                            "OR expires_at <= :opened_at",
                            "ExpressionAttributeValues": expression_values(opened_at=opened_at),
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._windows,
                            "Item": to_item(
                                {
                                    "pk": f"{pair}#openings",
                                    "sk": f"{iso(window.opened_at)}#{window.category}",
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
            reason: Mapping[str, Any] = error.response.get("CancellationReasons", [{}])[0]
            if condition_failed(reason):
                # Open already; by this very message when a retry follows a crash.
                open_window = from_item(reason.get("Item", {}))
                return open_window.get("message_id") == window.message_id
            raise
        return True

    def conversation_openings(self, sender: Address, contact: Address) -> list[ConversationWindow]:
        """Every conversation window ever opened for the pair, oldest first."""
        page = self._client.query(
            TableName=self._windows,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{_pair_key(sender, contact)}#openings"}},
        )
        return [_conversation(from_item(item)) for item in page.get("Items", [])]


def _pair_key(sender: Address, contact: Address) -> str:
    return f"{sender.whatsapp}#{contact.whatsapp}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


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
        opened_at=from_epoch(item["opened_at"]),
        expires_at=from_epoch(item["expires_at"]),
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
                last_inbound_at=from_epoch(item["last_inbound_at"]),
                expires_at=from_epoch(item["expires_at"]),
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
