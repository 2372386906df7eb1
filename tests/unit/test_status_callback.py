"""Twilio's status callback as the gateway reads it: which of Twilio's statuses move a message,
which are only acknowledged, and identities in ASCII only."""

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from whatsapp_gateway.domain.statuses import MessageStatus
from whatsapp_gateway.models.messages import StatusCallback, TemplateRef
from whatsapp_gateway.status_changes import Ignored, receive_status_callback

MESSAGE_SID = "SM" + "a" * 32
ACCOUNT_SID = "AC" + "1" * 32
TRACKED = ["queued", "sending", "sent", "delivered", "read", "failed", "undelivered"]
# Twilio reports these too (its message_enum_status); none is a step of the gateway's messages.
UNTRACKED = ["accepted", "scheduled", "canceled", "receiving", "received", "partially_delivered"]


def callback(**fields: str) -> StatusCallback:
    return StatusCallback.model_validate(
        {
            "MessageSid": MESSAGE_SID,
            "AccountSid": ACCOUNT_SID,
            "MessageStatus": "delivered",
            "From": "whatsapp:+14155238886",
            "To": "whatsapp:+15005550006",
            **fields,
        }
    )


class NoStore:
    """A store no call may reach."""

    def __getattr__(self, name: str) -> Any:
        pytest.fail(f"the store was asked for {name}")


@pytest.mark.parametrize("status", TRACKED)
def test_a_status_of_the_gateways_order_moves_the_message(status):
    assert callback(MessageStatus=status).status is MessageStatus(status)


@pytest.mark.parametrize("status", UNTRACKED)
def test_a_status_twilio_reports_that_the_gateway_does_not_track_moves_nothing(status):
    # Twilio's "accepted" is a Messaging Service taking a message, not the gateway's own
    assert callback(MessageStatus=status).status is None


@pytest.mark.parametrize("status", UNTRACKED)
def test_an_untracked_status_is_ignored_without_a_store_call(status):
    result = receive_status_callback(
        callback(MessageStatus=status),
        message_id="0" * 32,
        store=NoStore(),
        conversations=NoStore(),
        events=NoStore(),
        now=datetime(2026, 12, 2, tzinfo=UTC),
    )

    assert result is Ignored.UNTRACKED_STATUS


@pytest.mark.parametrize("status", ["teleported", "DELIVERED", ""])
def test_a_status_twilio_never_reports_is_invalid(status):
    with pytest.raises(ValidationError) as raised:
        callback(MessageStatus=status)

    assert [error["loc"] for error in raised.value.errors()] == [("MessageStatus",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("MessageSid", "SM" + "\u0660" * 32),  # Arabic-Indic zeros
        ("MessageSid", "SM" + "a" * 31 + "\uff10"),  # one fullwidth zero
        ("MessageSid", MESSAGE_SID + "\n"),
        ("AccountSid", "AC" + "1" * 31 + "\u0661"),
        ("AccountSid", ACCOUNT_SID + "\n"),
    ],
    ids=["sid-arabic-indic", "sid-fullwidth", "sid-newline", "account-arabic-indic", "account-nl"],
)
def test_sids_are_ascii_hex_only(field, value):
    with pytest.raises(ValidationError) as raised:
        callback(**{field: value})

    assert [error["loc"] for error in raised.value.errors()] == [(field,)]


@pytest.mark.parametrize(
    "sid", ["HX" + "a" * 31 + "\u0660", "HX" + "\uff10" * 32, "HX" + "a" * 32 + "\n"]
)
def test_a_content_sid_is_ascii_hex_only(sid):
    with pytest.raises(ValidationError):
        TemplateRef(content_sid=sid)
