"""Receiving a WhatsApp message: record it once, keep the pair's windows, tell the bus.

Twilio retries a webhook that did not answer 200, so each step is safe to repeat: the message
is recorded once per MessageSid (with the window and opt-out changes, in one transaction), its
events are published, then marked published. A retry after a crash between those steps
publishes the events it missed; a retry of a finished delivery changes nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from whatsapp_gateway.domain.opt_out import OptChange, opt_change
from whatsapp_gateway.domain.windows import ServiceWindow, service_window_after
from whatsapp_gateway.models.events import (
    ContactOptedIn,
    ContactOptedOut,
    GatewayEvent,
    MessageReceived,
)
from whatsapp_gateway.models.inbound import InboundMessage


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """The stored inbound message: new, or recorded by an earlier delivery of the webhook."""

    received_at: datetime
    duplicate: bool
    events_published: bool


class InboundStore(Protocol):
    def record_inbound(
        self,
        message: InboundMessage,
        *,
        received_at: datetime,
        idempotency_token: str | None,
        service_window: ServiceWindow,
        opt_change: OptChange | None,
    ) -> InboundRecord: ...

    def mark_events_published(self, message_id: str) -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[GatewayEvent]) -> None: ...


def receive_inbound_message(
    message: InboundMessage,
    *,
    received_at: datetime,
    idempotency_token: str | None,
    store: InboundStore,
    events: EventPublisher,
) -> InboundRecord:
    change = opt_change(message.body)
    record = store.record_inbound(
        message,
        received_at=received_at,
        idempotency_token=idempotency_token,
        service_window=service_window_after(received_at),
        opt_change=change,
    )
    if record.events_published:
        return record
    events.publish(inbound_events(message, change, record.received_at))
    store.mark_events_published(message.message_sid)
    return record


def inbound_events(
    message: InboundMessage, change: OptChange | None, received_at: datetime
) -> list[GatewayEvent]:
    sender, contact = message.to, message.from_
    events: list[GatewayEvent] = [
        MessageReceived(
            message_id=message.message_sid,
            account_sid=message.account_sid,
            sender=sender.id,
            contact=contact.id,
            contact_phone_number=contact.phone_number,
            profile_name=message.profile_name,
            received_at=received_at,
            body=message.body,
            media=message.media,
            button_payload=message.button_payload,
            button_text=message.button_text,
            location=message.location,
            replied_to_message_id=message.original_replied_message_sid,
            referral=message.referral,
        )
    ]
    if change is not None:
        opt_event = ContactOptedOut if change is OptChange.OPTED_OUT else ContactOptedIn
        events.append(
            opt_event(
                sender=sender.id, contact=contact.id, message_id=message.message_sid, at=received_at
            )
        )
    return events
