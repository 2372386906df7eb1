"""Which failed Twilio sends are retried: throttling and Twilio's outages, never a refusal of
the message itself."""

import pytest

from whatsapp_gateway.domain.twilio_errors import PERMANENT_CODES, RETRYABLE_CODES, is_retryable


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (428, False),
        (429, True),
        (430, False),
        (499, False),
        (500, True),
        (503, True),
        (599, True),
        (600, False),
        (302, False),
    ],
)
def test_without_a_twilio_code_the_http_status_decides(status, retryable):
    assert is_retryable(status=status, code=None) is retryable


def test_no_answer_at_all_is_retried():
    # A timeout or a lost connection: Twilio said nothing, so nothing was refused.
    assert is_retryable(status=None, code=None) is True


@pytest.mark.parametrize("code", [20429, 63018])
@pytest.mark.parametrize("status", [400, 429, 500])
def test_throttling_codes_are_retried_whatever_the_status(code, status):
    assert is_retryable(status=status, code=code) is True


@pytest.mark.parametrize("code", [63016, 21211, 63024, 63003, 21656, 63049, 63032])
@pytest.mark.parametrize("status", [400, 429, 500, None])
def test_refusals_of_the_message_are_never_retried_whatever_the_status(code, status):
    # Outside the window, a bad recipient, bad variables, Meta's refusals: the same message
    # would be refused again.
    assert is_retryable(status=status, code=code) is False


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (404, False), (429, True), (500, True)],
)
def test_an_unlisted_code_falls_back_to_the_status(status, retryable):
    assert is_retryable(status=status, code=30008) is retryable


def test_no_code_is_both_retryable_and_a_refusal():
    assert not RETRYABLE_CODES & PERMANENT_CODES
