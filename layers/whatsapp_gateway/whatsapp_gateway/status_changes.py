"""Telling the bus how an outbound message moved: ``message.status_changed`` for each real
change, and ``conversation.opened`` when the first delivery (or read) of a message opens the
conversation window of its category for the pair.

A change is stored first with an unpublished history entry; its events go out, then the entry
is marked. Whoever handles the same work after a crash (Twilio's retry, SQS's redelivery)
finds the entry unpublished and publishes it, so no event is lost. The conversation window is
opened once (a conditional write), and its event is repeated only for the message that opened
it.

A callback acts only on a message of the account that signed it, and only under the Twilio SID
the message was sent with: one account's token cannot move another account's messages, and a
message not yet handed to Twilio cannot be reported on.
"""

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.statuses import REACHED_CONTACT, MessageStatus
from whatsapp_gateway.domain.windows import ConversationWindow, open_conversation
from whatsapp_gateway.models.events import ConversationOpened, GatewayEvent, MessageStatusChanged
from whatsapp_gateway.models.messages import StatusCallback, StatusEntry
from whatsapp_gateway.outbound import OutboundRecord


class Ignored(StrEnum):
    """Why a callback Twilio signed changed nothing (it is acknowledged all the same: Twilio
    would retry an error, and a retry would change nothing either)."""

    UNTRACKED_STATUS = "untracked_status"
    UNKNOWN_MESSAGE = "unknown_message"
    # Another account's message, another SID than the one it was sent with, or not sent yet.
    NOT_ITS_MESSAGE = "not_its_message"


class StatusStore(Protocol):
    def message_id_of(self, twilio_sid: str) -> str | None: ...

    def apply_status(
        self,
        message_id: str,
        status: MessageStatus,
        *,
        account_sid: str,
        twilio_sid: str,
        at: datetime,
        error_code: str | None,
        error_message: str | None,
    ) -> OutboundRecord | Ignored: ...

    def mark_published(self, message_id: str, statuses: list[MessageStatus]) -> None: ...


class ConversationStore(Protocol):
    def open_conversation(
        self, sender: Address, contact: Address, window: ConversationWindow
    ) -> bool: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[GatewayEvent]) -> None: ...


def receive_status_callback(
    callback: StatusCallback,
    *,
    message_id: str | None,
    store: StatusStore,
    conversations: ConversationStore,
    events: EventPublisher,
    now: datetime,
) -> OutboundRecord | Ignored:
    """Applies Twilio's status callback: the message as it stands after it, or why it changed
    nothing."""
    status = callback.status
    if status is None:
        return Ignored.UNTRACKED_STATUS
    message_id = message_id or store.message_id_of(callback.message_sid)
    if message_id is None:
        return Ignored.UNKNOWN_MESSAGE
    record = store.apply_status(
        message_id,
        status,
        account_sid=callback.account_sid,
        twilio_sid=callback.message_sid,
        at=now,
        error_code=None if callback.error_code is None else str(callback.error_code),
        error_message=callback.error_message,
    )
    if not isinstance(record, Ignored):
        publish_status_changes(record, store=store, conversations=conversations, events=events)
    return record


def publish_status_changes(
    record: OutboundRecord,
    *,
    store: StatusStore,
    conversations: ConversationStore,
    events: EventPublisher,
) -> None:
    """Publishes the record's unpublished status changes, then marks them published."""
    if not record.unpublished:
        return
    first_reach = next(
        (e for e in record.history if e.applied and e.status in REACHED_CONTACT), None
    )
    pending: list[GatewayEvent] = []
    for entry in record.unpublished:
        pending.append(_status_changed(record, entry))
        if entry == first_reach and record.category is not None:
            window = open_conversation(None, record.category, entry.at, record.message_id)
            if window and conversations.open_conversation(record.sender, record.contact, window):
                pending.append(
                    ConversationOpened(
                        sender=record.sender.id,
                        contact=record.contact.id,
                        category=window.category.value,
                        opened_at=window.opened_at,
                        expires_at=window.expires_at,
                        message_id=record.message_id,
                    )
                )
    events.publish(pending)
    store.mark_published(record.message_id, [entry.status for entry in record.unpublished])


def _status_changed(record: OutboundRecord, entry: StatusEntry) -> MessageStatusChanged:
    taken = [e for e in record.history if e.applied]
    earlier = [e.status for e in taken[: taken.index(entry)]] if entry in taken else []
    return MessageStatusChanged(
        message_id=record.message_id,
        twilio_sid=record.twilio_sid,
        sender=record.sender.id,
        contact=record.contact.id,
        status=entry.status.value,
        previous_status=(earlier[-1] if earlier else MessageStatus.ACCEPTED).value,
        at=entry.at,
        error_code=entry.error_code,
        error_message=entry.error_message,
    )
