"""WhatsApp addresses: E.164 numbers and Meta's business-scoped user ids (BSUIDs)."""

import pytest

from whatsapp_gateway.domain.addresses import Address, InvalidAddressError

PHONE = "+15005550006"
BSUID = "US.13491208655302741918"


def test_parse_e164_address():
    # Given Twilio's form of a phone-number contact
    # When it is parsed
    address = Address.parse(f"whatsapp:{PHONE}")

    # Then the id, the Twilio form and the phone number are all available
    assert address.id == PHONE
    assert address.whatsapp == f"whatsapp:{PHONE}"
    assert str(address) == f"whatsapp:{PHONE}"
    assert address.phone_number == PHONE


@pytest.mark.parametrize("bsuid", [BSUID, "US.ENT.abc123XYZ", "BR." + "a" * 128])
def test_parse_business_scoped_user_id_has_no_phone_number(bsuid):
    # Given a contact known only by a business-scoped user id
    address = Address.parse(f"whatsapp:{bsuid}")

    # Then it is a valid address without a phone number
    assert address.id == bsuid
    assert address.whatsapp == f"whatsapp:{bsuid}"
    assert address.phone_number is None


@pytest.mark.parametrize("value", [PHONE, BSUID, f"sms:{PHONE}", ""])
def test_parse_requires_the_whatsapp_prefix(value):
    with pytest.raises(InvalidAddressError, match="whatsapp:"):
        Address.parse(value)


def test_from_id_accepts_the_id_with_or_without_prefix():
    # Given the same contact written both ways
    bare = Address.from_id(PHONE)
    prefixed = Address.from_id(f"whatsapp:{PHONE}")

    # Then both are the same address, equal to the parsed Twilio form, and hash alike
    assert bare == prefixed == Address.parse(f"whatsapp:{PHONE}")
    assert len({bare, prefixed}) == 1


def test_from_id_strips_surrounding_whitespace():
    assert Address.from_id(f"  {PHONE}\n").id == PHONE


@pytest.mark.parametrize(
    "number",
    [
        "+1234567",  # 7 digits: the shortest accepted
        "+123456789012345",  # 15 digits: the longest E.164 number
    ],
)
def test_from_id_accepts_e164_length_limits(number):
    assert Address.from_id(number).phone_number == number


@pytest.mark.parametrize(
    "value",
    [
        "",
        "whatsapp:",
        "15005550006",  # no plus sign
        "+05005550006",  # leading zero after the plus
        "+123456",  # 6 digits: too short
        "+1234567890123456",  # 16 digits: too long
        "+1 500 555 0006",  # spaces inside
        "+1500555000a",
        "us.13491208655302741918",  # country code must be upper case
        "USA.13491208655302741918",
        "US.",
        "US.1349-1208",
        "US." + "a" * 129,  # over 128 characters
    ],
)
def test_from_id_rejects_what_is_not_a_whatsapp_id(value):
    with pytest.raises(InvalidAddressError):
        Address.from_id(value)


def test_invalid_address_error_is_a_value_error():
    # So that pydantic validators turn it into a ValidationError.
    assert issubclass(InvalidAddressError, ValueError)


@pytest.mark.parametrize(
    ("value", "masked"),
    [(PHONE, "whatsapp:***0006"), (BSUID, "whatsapp:***1918")],
)
def test_masked_keeps_only_the_last_four_characters(value, masked):
    # Given an address
    address = Address.from_id(value)

    # When it is masked for a log line
    # Then only the last four characters of the id remain
    assert address.masked == masked
    assert value not in address.masked
