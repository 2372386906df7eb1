"""Events put on the bus (source ``whatsapp.gateway``). Numbers are E.164; a contact known
only by a business-scoped user id carries that id instead."""

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from whatsapp_gateway.models.inbound import Location, Media, Referral

EVENT_SOURCE = "whatsapp.gateway"


class GatewayEvent(BaseModel):
    """Base of every event; ``detail_type`` is the event's name on the bus."""

    model_config = ConfigDict(frozen=True)
    detail_type: ClassVar[str]


class MessageReceived(GatewayEvent):
    detail_type: ClassVar[str] = "message.received"

    message_id: str
    account_sid: str
    sender: str
    contact: str
    contact_phone_number: str | None
    profile_name: str | None
    received_at: datetime
    body: str
    media: tuple[Media, ...]
    button_payload: str | None
    button_text: str | None
    location: Location | None
    replied_to_message_id: str | None
    referral: Referral | None


class ContactOptedOut(GatewayEvent):
    detail_type: ClassVar[str] = "contact.opted_out"

    sender: str
    contact: str
    message_id: str
    at: datetime


class ContactOptedIn(ContactOptedOut):
    detail_type: ClassVar[str] = "contact.opted_in"


class MessageStatusChanged(GatewayEvent):
    detail_type: ClassVar[str] = "message.status_changed"

    message_id: str
    twilio_sid: str | None
    sender: str
    contact: str
    status: str
    previous_status: str
    at: datetime
    error_code: str | None
    error_message: str | None


class ConversationOpened(GatewayEvent):
    """A conversation window opened: one charge from Meta under conversation-based pricing."""

    detail_type: ClassVar[str] = "conversation.opened"

    sender: str
    contact: str
    category: str
    opened_at: datetime
    expires_at: datetime
    message_id: str


class TemplateStatusChanged(GatewayEvent):
    """Meta changed a template's approval or category (approved -> paused, for one), or it was
    deleted at Twilio (``status`` "deleted")."""

    detail_type: ClassVar[str] = "template.status_changed"

    sid: str
    account_sid: str
    name: str
    language: str
    status: str
    previous_status: str
    category: str | None
    previous_category: str | None
    rejection_reason: str | None
    at: datetime
