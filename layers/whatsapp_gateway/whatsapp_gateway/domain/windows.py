"""WhatsApp windows, decided by comparing ``expires_at`` with ``now``: never by whether a stored
item still exists (DynamoDB TTL deletes expired items days late).

- The customer service window (CSW) closes 24 hours after the contact's *last* inbound message;
  free-form messages may be sent only while it is open.
- A conversation window per category lasts 24 hours from its opening and is never extended;
  several categories can be open at once, and each opening is a separate charge from Meta.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

WINDOW_LENGTH = timedelta(hours=24)


class Category(StrEnum):
    """Conversation categories, lower case as in every answer and event."""

    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"
    SERVICE = "service"

    @classmethod
    def from_meta(cls, value: str) -> "Category":
        """Meta's category of a template, any case; the legacy TRANSACTIONAL is utility."""
        normalized = value.strip().lower()
        return cls.UTILITY if normalized == "transactional" else cls(normalized)


@dataclass(frozen=True, slots=True)
class ServiceWindow:
    last_inbound_at: datetime
    expires_at: datetime

    def is_open(self, now: datetime) -> bool:
        return now < self.expires_at


def service_window_after(inbound_at: datetime) -> ServiceWindow:
    """The CSW as an inbound message at ``inbound_at`` leaves it."""
    return ServiceWindow(last_inbound_at=inbound_at, expires_at=inbound_at + WINDOW_LENGTH)


@dataclass(frozen=True, slots=True)
class ConversationWindow:
    """One opening of a conversation window: the unit Meta charges for."""

    category: Category
    opened_at: datetime
    expires_at: datetime
    message_id: str

    def is_open(self, now: datetime) -> bool:
        return now < self.expires_at


def open_conversation(
    current: ConversationWindow | None, category: Category, now: datetime, message_id: str
) -> ConversationWindow | None:
    """The window that ``message_id`` opens, or None when one of that category is still open
    (it is not extended)."""
    if current is not None and current.is_open(now):
        return None
    return ConversationWindow(
        category=category, opened_at=now, expires_at=now + WINDOW_LENGTH, message_id=message_id
    )


@dataclass(frozen=True, slots=True)
class ContactState:
    """What the gateway knows of one (sender, contact) pair."""

    service_window: ServiceWindow | None = None
    conversations: tuple[ConversationWindow, ...] = ()
    opted_out: bool = False

    def service_window_open(self, now: datetime) -> bool:
        return self.service_window is not None and self.service_window.is_open(now)

    def open_conversations(self, now: datetime) -> tuple[ConversationWindow, ...]:
        return tuple(window for window in self.conversations if window.is_open(now))

    def conversation(self, category: Category) -> ConversationWindow | None:
        return next((w for w in self.conversations if w.category is category), None)
