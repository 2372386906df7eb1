"""Opt-out and opt-in keywords: the whole message, in any case."""

import pytest

from whatsapp_gateway.domain.opt_out import (
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    OptChange,
    opt_change,
)


def test_every_opt_out_keyword_in_any_case():
    # When the contact's whole message is an opt-out keyword, in any case
    # Then it opts them out
    assert {"STOP", "UNSUBSCRIBE"} <= OPT_OUT_KEYWORDS
    for keyword in OPT_OUT_KEYWORDS:
        for body in (keyword, keyword.lower(), keyword.title()):
            assert opt_change(body) is OptChange.OPTED_OUT, body


def test_every_opt_in_keyword_in_any_case():
    assert "START" in OPT_IN_KEYWORDS
    for keyword in OPT_IN_KEYWORDS:
        for body in (keyword, keyword.lower(), keyword.title()):
            assert opt_change(body) is OptChange.OPTED_IN, body


@pytest.mark.parametrize(
    ("body", "change"),
    [
        ("  sToP\n", OptChange.OPTED_OUT),
        ("Stop.", OptChange.OPTED_OUT),
        ("start!", OptChange.OPTED_IN),
    ],
)
def test_surrounding_whitespace_and_final_punctuation_are_ignored(body, change):
    assert opt_change(body) is change


@pytest.mark.parametrize(
    "body",
    ["stop please", "please stop", "start now", ""],
)
def test_a_keyword_inside_a_longer_message_changes_nothing(body):
    assert opt_change(body) is None


def test_no_word_is_both_an_opt_out_and_an_opt_in_keyword():
    assert not OPT_OUT_KEYWORDS & OPT_IN_KEYWORDS
