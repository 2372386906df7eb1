"""Which message Twilio lists is the one an attempt in an unknown state created: decided on its
creation time and its text, never on date_sent (null until Twilio sends it)."""

from datetime import UTC, datetime, timedelta

import pytest

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.models.twilio import ListedMessage, SendRequest
from whatsapp_gateway.sending import attempt_candidates

SINCE = datetime(2026, 11, 25, 8, 58, tzinfo=UTC)  # the attempt began at 09:00, less the slack
SENDER = Address.parse("whatsapp:+14155238886")
CONTACT = Address.parse("whatsapp:+15005550006")
TEXT = SendRequest(from_=SENDER, to=CONTACT, body="Your order shipped")
TEMPLATE = SendRequest(from_=SENDER, to=CONTACT, content_sid="HX" + "a" * 32)


def listed(number: int, created: datetime, body: str = "Your order shipped") -> ListedMessage:
    return ListedMessage(sid=f"SM{number:032x}", status="queued", date_created=created, body=body)


def test_a_message_created_since_the_attempt_with_its_text_is_a_candidate_sent_or_not():
    queued = listed(1, SINCE + timedelta(minutes=2))

    assert attempt_candidates([queued], TEXT, SINCE) == [queued]


def test_a_message_created_at_the_very_start_of_the_window_counts():
    assert attempt_candidates([listed(1, SINCE)], TEXT, SINCE) == [listed(1, SINCE)]


def test_a_message_created_before_the_window_is_not_the_attempts():
    assert attempt_candidates([listed(1, SINCE - timedelta(seconds=1))], TEXT, SINCE) == []


@pytest.mark.parametrize(
    ("listed_body", "candidate"),
    [
        ("Your order shipped", True),
        ("  Your order\nshipped ", True),
        ("It arrives tomorrow", False),
        ("", False),
    ],
    ids=["same", "same-words-other-spacing", "other-text", "no-text"],
)
def test_a_free_form_attempt_is_recognized_by_its_text(listed_body, candidate):
    message = listed(1, SINCE + timedelta(minutes=2), body=listed_body)

    assert attempt_candidates([message], TEXT, SINCE) == ([message] if candidate else [])


def test_a_template_attempt_is_recognized_by_its_time_alone():
    # Twilio lists the template as it rendered it, without its Content SID
    rendered = listed(1, SINCE + timedelta(minutes=2), body="Hello Ada, your order has shipped.")

    assert attempt_candidates([rendered], TEMPLATE, SINCE) == [rendered]


def test_candidates_come_oldest_first_from_a_listing_newest_first():
    newer = listed(2, SINCE + timedelta(minutes=3))
    older = listed(1, SINCE + timedelta(minutes=2))
    before = listed(0, SINCE - timedelta(minutes=5))

    assert attempt_candidates([newer, older, before], TEXT, SINCE) == [older, newer]
