"""The window store on moto: conditional writes that keep the WhatsApp rules under concurrency."""

from datetime import timedelta

import boto3
import pytest

from tests.integration.conftest import NOW, inbound_form
from whatsapp_gateway.adapters.dynamodb import GatewayStore
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.opt_out import OptChange
from whatsapp_gateway.domain.windows import Category, open_conversation, service_window_after
from whatsapp_gateway.models.inbound import InboundMessage
from whatsapp_gateway.runtime import Runtime

SENDER = Address.parse("whatsapp:+14155238886")
CONTACT = Address.parse("whatsapp:+15005550006")
HOUR = timedelta(hours=1)


def message(sid_char: str, body: str = "hi") -> InboundMessage:
    return InboundMessage.model_validate(inbound_form(MessageSid="SM" + sid_char * 32, Body=body))


@pytest.fixture
def store(gateway: Runtime) -> GatewayStore:
    return gateway.store


def record(store: GatewayStore, sid_char: str, at, body: str = "hi", change=None):
    return store.record_inbound(
        message(sid_char, body),
        received_at=at,
        idempotency_token=None,
        service_window=service_window_after(at),
        opt_change=change,
    )


def test_two_inbound_messages_out_of_order_never_shorten_the_window(store: GatewayStore):
    # Given the later message's write lands first
    record(store, "b", NOW + HOUR)

    # When the earlier message's write lands after it
    late = record(store, "a", NOW)

    # Then both messages are recorded, and the window still runs from the later one
    assert late.duplicate is False
    window = store.contact_state(SENDER, CONTACT).service_window
    assert window is not None
    assert window.expires_at == NOW + HOUR + timedelta(hours=24)
    assert window.last_inbound_at == NOW + HOUR


def test_a_late_opt_in_does_not_undo_a_newer_opt_out(store: GatewayStore):
    record(store, "b", NOW + HOUR, "STOP", OptChange.OPTED_OUT)
    record(store, "a", NOW, "START", OptChange.OPTED_IN)

    assert store.contact_state(SENDER, CONTACT).opted_out is True


def test_a_later_message_extends_the_window(store: GatewayStore):
    record(store, "a", NOW)
    record(store, "b", NOW + HOUR)

    window = store.contact_state(SENDER, CONTACT).service_window
    assert window is not None
    assert window.expires_at == NOW + HOUR + timedelta(hours=24)


def test_an_expired_window_that_ttl_has_not_deleted_reads_as_closed(store: GatewayStore):
    # Given a window whose item is still stored (DynamoDB's TTL runs days late)
    record(store, "a", NOW)
    after_expiry = NOW + timedelta(hours=24)

    state = store.contact_state(SENDER, CONTACT)

    assert state.service_window is not None  # the item is there ...
    assert state.service_window_open(after_expiry - timedelta(seconds=1))
    assert not state.service_window_open(after_expiry)  # ... and the window is closed


def test_a_category_window_opens_once_while_open(store: GatewayStore):
    first = open_conversation(None, Category.MARKETING, NOW, "msg-1")
    second = open_conversation(None, Category.MARKETING, NOW + HOUR, "msg-2")
    assert first is not None
    assert second is not None

    assert store.open_conversation(SENDER, CONTACT, first) is True
    # A concurrent delivery that did not see the first opening is refused by the store
    assert store.open_conversation(SENDER, CONTACT, second) is False

    [window] = store.contact_state(SENDER, CONTACT).conversations
    assert window.message_id == "msg-1"
    assert window.expires_at == NOW + timedelta(hours=24)
    assert len(store.conversation_openings(SENDER, CONTACT)) == 1


def test_a_category_window_reopens_after_it_expired_and_each_opening_is_recorded(
    store: GatewayStore,
):
    first = open_conversation(None, Category.UTILITY, NOW, "msg-1")
    assert first is not None
    store.open_conversation(SENDER, CONTACT, first)

    later = NOW + timedelta(hours=24)
    reopened = open_conversation(first, Category.UTILITY, later, "msg-2")
    assert reopened is not None
    assert store.open_conversation(SENDER, CONTACT, reopened) is True

    openings = store.conversation_openings(SENDER, CONTACT)
    assert [o.message_id for o in openings] == ["msg-1", "msg-2"]
    assert [o.opened_at for o in openings] == [NOW, later]


def test_four_categories_open_side_by_side(store: GatewayStore):
    for category in Category:
        window = open_conversation(None, category, NOW, f"msg-{category}")
        assert window is not None
        assert store.open_conversation(SENDER, CONTACT, window) is True

    state = store.contact_state(SENDER, CONTACT)
    assert {w.category for w in state.open_conversations(NOW + HOUR)} == set(Category)
    assert state.open_conversations(NOW + timedelta(hours=24)) == ()


def test_windows_are_per_sender_and_contact(store: GatewayStore):
    record(store, "a", NOW)
    other_sender = Address.parse("whatsapp:+15005550001")

    assert store.contact_state(other_sender, CONTACT).service_window is None


def test_window_items_carry_their_expiry_as_the_ttl_attribute(store: GatewayStore):
    record(store, "a", NOW)

    ttl = boto3.client("dynamodb").describe_time_to_live(TableName="WindowsTable")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    [item] = boto3.client("dynamodb").scan(TableName="WindowsTable")["Items"]
    assert int(item["expires_at"]["N"]) == int((NOW + timedelta(hours=24)).timestamp())
