"""The dead-letter use case against in-memory fakes: what it asks the store to record, and what
it announces (the store's conditional writes are proven on moto, test_send_dead_letters.py)."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from whatsapp_gateway.dead_letters import DEAD_LETTERED, end_dead_lettered
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.statuses import MessageStatus
from whatsapp_gateway.models.accounts import TwilioAccounts
from whatsapp_gateway.models.events import GatewayEvent, MessageStatusChanged
from whatsapp_gateway.models.messages import StatusEntry
from whatsapp_gateway.outbound import OutboundRecord

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SENDER = "whatsapp:+14155238886"
ACCOUNTS = TwilioAccounts.model_validate(
    {
        "accounts": [
            {"account_sid": "AC" + "1" * 32, "auth_token": "test-token", "senders": [SENDER]}
        ],
        "default_sender": SENDER,
    }
)


@dataclass
class Store:
    """Records what it is asked; answers as the messages table would for a message it holds
    (``ended``: sent or ended before, nothing to announce)."""

    ended: bool = False
    failed: list[tuple[str, str, OutboundRecord | None]] = field(default_factory=list)
    published: list[list[MessageStatus]] = field(default_factory=list)

    def record_failed(
        self,
        message_id: str,
        code: str,
        message: str,
        now: datetime,
        *,
        draft: OutboundRecord | None = None,
    ) -> OutboundRecord | None:
        self.failed.append((message_id, code, draft))
        if self.ended or draft is None:
            return None
        entry = StatusEntry(status=MessageStatus.FAILED, at=now, error_code=code)
        return replace(draft, status=MessageStatus.FAILED, history=(entry,), unpublished=(entry,))

    def mark_published(self, message_id: str, statuses: list[MessageStatus]) -> None:
        self.published.append(statuses)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the use case has no business calling {name}")


class Conversations:
    def open_conversation(self, *args: Any) -> bool:
        raise AssertionError("a failed message opens no conversation")


@dataclass
class Bus:
    events: list[GatewayEvent] = field(default_factory=list)

    def publish(self, events: Sequence[GatewayEvent]) -> None:
        self.events.extend(events)


def end(body: str, store: Store, bus: Bus) -> OutboundRecord | None:
    return end_dead_lettered(
        body,
        message_id="m-1",
        accounts=ACCOUNTS,
        store=store,
        conversations=Conversations(),
        events=bus,
        now=NOW,
    )


def test_a_dead_letter_is_failed_as_what_its_body_says_and_announced():
    store, bus = Store(), Bus()

    record = end(json.dumps({"to": "+15005550006", "body": "Hi"}), store, bus)

    [(message_id, code, draft)] = store.failed
    assert (message_id, code) == ("m-1", DEAD_LETTERED)
    assert draft is not None
    assert (draft.sender, draft.contact) == (Address.parse(SENDER), Address.from_id("+15005550006"))
    assert record is not None
    [event] = bus.events
    assert isinstance(event, MessageStatusChanged)
    assert (event.status, event.error_code, event.contact) == (
        "failed",
        DEAD_LETTERED,
        "+15005550006",
    )
    assert store.published == [[MessageStatus.FAILED]]


@pytest.mark.parametrize(
    "body",
    ["{not json", json.dumps({"to": "+15005550006"}), json.dumps({"to": "+1", "body": "Hi"})],
    ids=["not-json", "no-content", "bad-number"],
)
def test_a_dead_letter_that_is_no_message_is_failed_without_a_draft_or_an_event(body):
    store, bus = Store(), Bus()

    assert end(body, store, bus) is None

    assert [(code, draft) for _, code, draft in store.failed] == [(DEAD_LETTERED, None)]
    assert bus.events == []


def test_a_message_sent_or_ended_before_is_left_as_it_is_and_not_announced():
    store, bus = Store(ended=True), Bus()

    assert end(json.dumps({"to": "+15005550006", "body": "Hi"}), store, bus) is None

    assert bus.events == []
    assert store.published == []
