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


@pytest.mark.parametrize("bsuid", [BSUID, "US.ENT.abc123XYZ"])
def test_parse_business_scoped_user_id_has_no_phone_number(bsuid):
    # Given a contact known only by a business-scoped user id
    address = Address.parse(f"whatsapp:{bsuid}")

    # Then it is a valid address without a phone number
    assert address.id == bsuid
    assert address.whatsapp == f"whatsapp:{bsuid}"
    assert address.phone_number is None


@pytest.mark.parametrize("value", [PHONE, f"sms:{PHONE}"])
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


def test_from_id_accepts_the_length_limits():
    # 7 to 15 digits for E.164; up to 128 characters after the country code for a BSUID
    for value in ("+1234567", "+123456789012345", "BR." + "a" * 128):
        assert Address.from_id(value).id == value


@pytest.mark.parametrize(
    "value",
    [
        "15005550006",  # no plus sign
        "+05005550006",  # leading zero after the plus
        "+123456",  # 6 digits: too short
        "+1234567890123456",  # 16 digits: too long
        "us.13491208655302741918",  # country code must be upper case
        "US." + "a" * 129,  # over 128 characters
    ],
    ids=["no-plus", "leading-zero", "6-digits", "16-digits", "lower-case-bsuid", "bsuid-129"],
)
def test_from_id_rejects_what_is_not_a_whatsapp_id(value):
    with pytest.raises(InvalidAddressError):
        Address.from_id(value)


def test_masked_keeps_only_the_last_four_characters():
    # Given a phone number and a BSUID
    phone, bsuid = Address.from_id(PHONE), Address.from_id(BSUID)

    # When they are masked for a log line
    # Then only the last four characters of the id remain
    assert phone.masked == "whatsapp:***0006"
    assert bsuid.masked == "whatsapp:***1918"
    assert PHONE not in phone.masked
    assert BSUID not in bsuid.masked


ARABIC_INDIC, EXTENDED_ARABIC_INDIC, DEVANAGARI, FULLWIDTH = 0x0660, 0x06F0, 0x0966, 0xFF10


def digits_in(zero: int, digits: str) -> str:
    """``digits`` written with the script whose digit zero is the code point ``zero``."""
    return "".join(chr(zero + int(digit)) for digit in digits)


@pytest.mark.parametrize(
    "value",
    [
        "+1" + digits_in(ARABIC_INDIC, "5005550006"),  # int() reads it as 15005550006
        "+" + digits_in(EXTENDED_ARABIC_INDIC, "15005550006"),
        "+" + digits_in(FULLWIDTH, "15005550006"),
        "+" + digits_in(DEVANAGARI, "15005550006"),
        "+1500555000" + digits_in(FULLWIDTH, "6"),  # one digit among ASCII ones
        "US." + digits_in(ARABIC_INDIC, "13491208655"),  # a BSUID
    ],
    ids=["arabic-indic", "extended-arabic-indic", "fullwidth", "devanagari", "one-digit", "bsuid"],
)
def test_only_ascii_digits_make_an_identity(value):
    # Python's \d and int() accept every script's digits: one person would have two identities
    with pytest.raises(InvalidAddressError):
        Address.from_id(value)
    with pytest.raises(InvalidAddressError):
        Address.parse(f"whatsapp:{value}")
