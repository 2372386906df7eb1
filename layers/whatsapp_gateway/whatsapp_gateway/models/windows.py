"""``GET /v1/contacts/{contact}/windows``: the windows of one (sender, contact) pair."""

from datetime import datetime

from pydantic import BaseModel

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.windows import Category, ContactState


class ServiceWindowView(BaseModel):
    open: bool
    expires_at: datetime | None


class ConversationView(BaseModel):
    category: Category
    opened_at: datetime
    expires_at: datetime


class ContactWindows(BaseModel):
    sender: str
    contact: str
    service_window: ServiceWindowView
    conversations: list[ConversationView]
    opted_out: bool

    @classmethod
    def at(
        cls, sender: Address, contact: Address, state: ContactState, now: datetime
    ) -> "ContactWindows":
        """The pair's windows as they stand at ``now``: expired ones are closed."""
        window_open = state.service_window_open(now)
        return cls(
            sender=sender.whatsapp,
            contact=contact.whatsapp,
            service_window=ServiceWindowView(
                open=window_open,
                expires_at=state.service_window.expires_at
                if window_open and state.service_window
                else None,
            ),
            conversations=[
                ConversationView(
                    category=window.category,
                    opened_at=window.opened_at,
                    expires_at=window.expires_at,
                )
                for window in state.open_conversations(now)
            ],
            opted_out=state.opted_out,
        )
