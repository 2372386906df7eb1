"""GET /v1/contacts/{contact}/windows on moto."""

import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest

from api import app as api
from inbound_webhook import app as inbound
from tests.integration.conftest import NOW, api_event, inbound_form, webhook_event
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.windows import Category, open_conversation
from whatsapp_gateway.runtime import Runtime

SENDER = Address.parse("whatsapp:+14155238886")
CONTACT = Address.parse("whatsapp:+15005550006")


def get_windows(lambda_context, contact: str, query: str = "") -> tuple[int, dict[str, Any]]:
    response = api.handler(
        api_event("GET", f"/v1/contacts/{contact}/windows", query), lambda_context
    )
    return response["statusCode"], json.loads(response["body"])


def test_a_contact_who_never_wrote_has_everything_closed(gateway: Runtime, lambda_context):
    status, body = get_windows(lambda_context, "+15005550006")

    assert status == 200
    assert body == {
        "sender": "whatsapp:+14155238886",
        "contact": "whatsapp:+15005550006",
        "service_window": {"open": False, "expires_at": None},
        "conversations": [],
        "opted_out": False,
    }


def test_an_inbound_message_opens_the_service_window_for_24_hours(gateway: Runtime, lambda_context):
    inbound.handler(webhook_event(inbound_form()), lambda_context)

    status, body = get_windows(lambda_context, "+15005550006")

    assert status == 200
    assert body["service_window"] == {"open": True, "expires_at": "2026-11-26T09:00:00Z"}

    gateway.clock.advance(timedelta(hours=24).total_seconds())
    _, body = get_windows(lambda_context, "+15005550006")
    assert body["service_window"] == {"open": False, "expires_at": None}


def test_open_conversations_are_listed_and_expired_ones_are_not(gateway: Runtime, lambda_context):
    for category, opened_at in (
        (Category.MARKETING, NOW - timedelta(hours=25)),
        (Category.UTILITY, NOW - timedelta(hours=1)),
    ):
        window = open_conversation(None, category, opened_at, f"msg-{category}")
        assert window is not None
        gateway.store.open_conversation(SENDER, CONTACT, window)

    _, body = get_windows(lambda_context, "+15005550006")

    assert body["conversations"] == [
        {
            "category": "utility",
            "opened_at": "2026-11-25T08:00:00Z",
            "expires_at": "2026-11-26T08:00:00Z",
        }
    ]


def test_a_url_encoded_whatsapp_address_names_the_contact(gateway: Runtime, lambda_context):
    inbound.handler(webhook_event(inbound_form(Body="STOP")), lambda_context)

    status, body = get_windows(lambda_context, quote("whatsapp:+15005550006", safe=""))

    assert status == 200
    assert body["opted_out"] is True
    assert body["service_window"]["open"] is True


def test_another_configured_sender_is_chosen_with_from(gateway: Runtime, lambda_context):
    status, body = get_windows(lambda_context, "+15005550006", "from=%2B14155238886")

    assert status == 200
    assert body["sender"] == "whatsapp:+14155238886"


@pytest.mark.parametrize(
    ("contact", "query", "status", "code"),
    [
        pytest.param("12345", "", 400, "invalid_address", id="contact-not-e164"),
        pytest.param("whatsapp%3Anobody", "", 400, "invalid_address", id="contact-not-an-address"),
        pytest.param(
            "+15005550006", "from=%2B15005550009", 422, "unknown_sender", id="unknown-from"
        ),
        pytest.param("+15005550006", "from=not-a-number", 400, "invalid_address", id="bad-from"),
    ],
)
def test_bad_requests_get_a_clear_error(
    gateway: Runtime, lambda_context, contact, query, status, code
):
    answer_status, body = get_windows(lambda_context, contact, query)

    assert answer_status == status
    assert body["error"]["code"] == code
    assert body["error"]["message"]
