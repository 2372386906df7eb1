"""The configured Twilio accounts: tokens (with rotation grace), senders and validation."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.models.accounts import TwilioAccount, TwilioAccounts

ACCOUNT_A = "AC" + "1" * 32
ACCOUNT_B = "AC" + "2" * 32
SENDER_A = "whatsapp:+14155238886"
SENDER_B = "+15005550006"
ROTATED_AT = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def account(**overrides: Any) -> dict[str, Any]:
    return {"account_sid": ACCOUNT_A, "auth_token": "current-token", **overrides}


def rotated() -> TwilioAccount:
    return TwilioAccount.model_validate(
        account(previous_auth_token="previous-token", rotated_at="2026-01-01T00:00:00Z")
    )


# --- signing tokens -------------------------------------------------------------------------


def test_without_rotation_only_the_current_token_signs():
    assert TwilioAccount.model_validate(account()).signing_tokens(ROTATED_AT, GRACE) == [
        "current-token"
    ]


@pytest.mark.parametrize(
    ("since_rotation", "tokens"),
    [
        (GRACE - SECOND, ["current-token", "previous-token"]),
        (GRACE, ["current-token"]),
        (GRACE + SECOND, ["current-token"]),
    ],
    ids=["grace-minus-1s", "exactly-grace", "grace-plus-1s"],
)
def test_previous_token_signs_only_during_the_grace_period(since_rotation, tokens):
    # Given an account whose token was rotated at ROTATED_AT
    # When a webhook arrives some time after the rotation
    # Then the previous token is accepted until, and not including, rotated_at + grace
    assert rotated().signing_tokens(ROTATED_AT + since_rotation, GRACE) == tokens


def test_auth_tokens_stay_out_of_repr():
    text = repr(rotated())

    assert "current-token" not in text
    assert "previous-token" not in text


# --- account validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        (account(previous_auth_token="previous-token"), ()),  # a rotation needs its date
        (account(account_sid="AC" + "1" * 31), ("account_sid",)),
        (account(auth_token=""), ("auth_token",)),
        (account(rotated_at="2026-01-01T00:00:00", previous_auth_token="p"), ("rotated_at",)),
        (account(senders=["+1 415 523 8886"]), ("senders", 0)),
        (account(region="us1"), ("region",)),
    ],
    ids=[
        "previous-without-rotated-at",
        "short-sid",
        "empty-token",
        "naive-rotated-at",
        "invalid-sender",
        "unknown-field",
    ],
)
def test_invalid_account_is_rejected(fields, location):
    with pytest.raises(ValidationError) as raised:
        TwilioAccount.model_validate(fields)

    assert [error["loc"] for error in raised.value.errors()] == [location]


def test_senders_accept_e164_or_whatsapp_form():
    parsed = TwilioAccount.model_validate(account(senders=[SENDER_A, SENDER_B]))

    assert parsed.senders == (Address.parse(SENDER_A), Address.from_id(SENDER_B))


# --- several accounts -----------------------------------------------------------------------


def accounts(default_sender: str | None = None, senders_b: list[str] | None = None):
    return TwilioAccounts.model_validate(
        {
            "accounts": [
                account(senders=[SENDER_A]),
                account(
                    account_sid=ACCOUNT_B, senders=[SENDER_B] if senders_b is None else senders_b
                ),
            ],
            "default_sender": default_sender,
        }
    )


def test_account_by_sid():
    configured = accounts()

    found = configured.account(ACCOUNT_B)
    assert found is not None
    assert found.account_sid == ACCOUNT_B
    assert configured.account("AC" + "3" * 32) is None


def test_account_of_a_sender():
    # Given two accounts, each with its own sender
    configured = accounts()

    # Then each sender belongs to its account, whichever form it was configured in
    account_a = configured.account_of(Address.parse(SENDER_A))
    account_b = configured.account_of(Address.parse(f"whatsapp:{SENDER_B}"))
    assert account_a is not None
    assert account_a.account_sid == ACCOUNT_A
    assert account_b is not None
    assert account_b.account_sid == ACCOUNT_B
    assert configured.account_of(Address.from_id("+15005550009")) is None


def test_sender_or_default():
    # A named sender is used as named; otherwise the configured default
    named = Address.from_id("+15005550009")
    assert accounts().sender_or_default(named) == named
    assert accounts(default_sender=SENDER_B).sender_or_default(None) == Address.from_id(SENDER_B)


@pytest.mark.parametrize(
    ("senders_b", "default"),
    [([], Address.parse(SENDER_A)), ([SENDER_B], None)],
    ids=["only-one-sender", "several-senders"],
)
def test_sender_or_default_without_configured_default(senders_b, default):
    # The only configured sender is the default; with several and no default there is none
    assert accounts(senders_b=senders_b).sender_or_default(None) == default


def test_no_sender_at_all_gives_no_default():
    configured = TwilioAccounts.model_validate({"accounts": [account()]})

    assert configured.sender_or_default(None) is None


@pytest.mark.parametrize(
    "document",
    [
        {"accounts": []},
        {"accounts": [account(senders=[SENDER_A])], "default_sender": SENDER_B},
    ],
    ids=["no-account", "default-sender-of-no-account"],
)
def test_invalid_accounts_document_is_rejected(document):
    with pytest.raises(ValidationError):
        TwilioAccounts.model_validate(document)


@pytest.mark.parametrize(
    "accounts",
    [
        pytest.param(
            [
                {"account_sid": "AC" + "1" * 32, "auth_token": "a", "senders": ["+14155238886"]},
                {"account_sid": "AC" + "2" * 32, "auth_token": "b", "senders": ["+14155238886"]},
            ],
            id="sender-in-two-accounts",
        ),
        pytest.param(
            [
                {"account_sid": "AC" + "1" * 32, "auth_token": "a"},
                {"account_sid": "AC" + "1" * 32, "auth_token": "b"},
            ],
            id="account-listed-twice",
        ),
    ],
)
def test_inconsistent_accounts_are_refused(accounts):
    with pytest.raises(ValidationError):
        TwilioAccounts.model_validate({"accounts": accounts})
