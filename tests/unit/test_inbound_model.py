"""Twilio's inbound WhatsApp webhook, from its flat form fields."""

from typing import Any

import pytest
from pydantic import ValidationError

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.models.inbound import InboundMessage, Location, Media, Referral

MESSAGE_SID = "SM" + "0" * 32
ACCOUNT_SID = "AC" + "1" * 32
CONTACT = "whatsapp:+15005550006"
SENDER = "whatsapp:+14155238886"
BSUID = "US.13491208655302741918"


def form(**fields: str) -> dict[str, Any]:
    """The fields every inbound webhook has, plus ``fields``."""
    return {
        "MessageSid": MESSAGE_SID,
        "AccountSid": ACCOUNT_SID,
        "From": CONTACT,
        "To": SENDER,
        **fields,
    }


def test_text_message():
    # Given a plain text message as Twilio posts it
    # When it is parsed
    message = InboundMessage.model_validate(
        form(Body="Hello", NumMedia="0", ProfileName="Ana", WaId="15005550006", MessageType="text")
    )

    # Then the named fields are typed and nothing is grouped
    assert message.message_sid == MESSAGE_SID
    assert message.account_sid == ACCOUNT_SID
    assert message.from_ == Address.parse(CONTACT)
    assert message.to == Address.parse(SENDER)
    assert message.body == "Hello"
    assert message.profile_name == "Ana"
    assert message.wa_id == "15005550006"
    assert message.message_type == "text"
    assert (message.num_media, message.media) == (0, ())
    assert message.location is None
    assert message.referral is None


def test_minimal_message_has_defaults():
    message = InboundMessage.model_validate(form())

    assert message.body == ""
    assert message.num_media == 0
    assert message.twilio_extra_fields == {}


def test_contact_known_only_by_business_scoped_user_id():
    # Given a contact with no phone number: From is a BSUID, with ExternalUserId
    message = InboundMessage.model_validate(
        form(From=f"whatsapp:{BSUID}", ExternalUserId=BSUID, Body="hi")
    )

    # Then the contact is valid and has no phone number
    assert message.from_.id == BSUID
    assert message.from_.phone_number is None
    assert message.external_user_id == BSUID


def test_media_pairs_are_grouped_in_order():
    # Given a message with two media, as flat MediaUrlN / MediaContentTypeN fields
    fields = form(
        MessageSid="MM" + "0" * 32,
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/media/ME0",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/media/ME1",
        MediaContentType1="application/pdf",
    )

    # When it is parsed
    message = InboundMessage.model_validate(fields)

    # Then they become two media, in order, and leave no flat field behind
    assert message.num_media == 2
    assert message.media == (
        Media(url="https://api.twilio.com/media/ME0", content_type="image/jpeg"),
        Media(url="https://api.twilio.com/media/ME1", content_type="application/pdf"),
    )
    assert message.twilio_extra_fields == {}


def test_media_without_content_type():
    message = InboundMessage.model_validate(
        form(NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME0")
    )

    assert message.media == (Media(url="https://api.twilio.com/media/ME0"),)


def test_location_is_grouped():
    # Given a shared location
    message = InboundMessage.model_validate(
        form(
            Latitude="37.7879277",
            Longitude="-122.3937508",
            Address="375 Beale St, San Francisco",
            Label="Twilio HQ",
            MessageType="location",
        )
    )

    # Then it is one Location with float coordinates, not extra fields
    assert message.location == Location(
        latitude=37.7879277,
        longitude=-122.3937508,
        address="375 Beale St, San Francisco",
        label="Twilio HQ",
    )
    assert message.twilio_extra_fields == {}


def test_referral_fields_are_grouped():
    # Given a message from a click-to-WhatsApp ad
    message = InboundMessage.model_validate(
        form(
            ReferralSourceId="1234567890",
            ReferralSourceType="ad",
            ReferralSourceUrl="https://fb.me/example",
            ReferralHeadline="Spring sale",
            ReferralBody="20% off",
            ReferralCtwaClid="clid-1",
        )
    )

    # Then the referral is one object
    assert message.referral == Referral(
        source_id="1234567890",
        source_type="ad",
        source_url="https://fb.me/example",
        headline="Spring sale",
        body="20% off",
        ctwa_clid="clid-1",
    )


def test_reply_and_button_fields():
    message = InboundMessage.model_validate(
        form(
            ButtonPayload="confirm",
            ButtonText="Confirm",
            OriginalRepliedMessageSid="SM" + "2" * 32,
            OriginalRepliedMessageSender=SENDER,
        )
    )

    assert (message.button_payload, message.button_text) == ("confirm", "Confirm")
    assert message.original_replied_message_sid == "SM" + "2" * 32
    assert message.original_replied_message_sender == SENDER


def test_unknown_fields_are_kept_as_twilio_sent_them():
    # Given fields this model does not name (Twilio adds fields without notice)
    extra = {"SmsStatus": "received", "ApiVersion": "2010-04-01", "ChannelMetadata": "{}"}

    # When the message is parsed
    message = InboundMessage.model_validate(form(**extra))

    # Then they are kept, not rejected
    assert message.model_extra == extra
    assert message.twilio_extra_fields == extra


def test_referral_num_media_zero_alone_is_not_a_referral():
    # Given an ordinary message: Twilio adds ReferralNumMedia=0 to every WhatsApp webhook
    message = InboundMessage.model_validate(form(Body="hi", NumMedia="0", ReferralNumMedia="0"))

    # Then the message did not come from an ad
    assert message.referral is None


def test_unknown_referral_fields_are_kept():
    message = InboundMessage.model_validate(
        form(ReferralSourceType="ad", ReferralNumMedia="1", ReferralSourceId="1234567890")
    )

    assert message.twilio_extra_fields == {"ReferralNumMedia": "1"}


@pytest.mark.parametrize(
    "fields",
    [
        {"From": None},
        {"To": None},
        {"MessageSid": None},
        {"AccountSid": None},
        {"From": "+15005550006"},
        {"MessageSid": "SM123"},
    ],
    ids=[
        "no-from",
        "no-to",
        "no-message-sid",
        "no-account-sid",
        "from-without-whatsapp-prefix",
        "malformed-message-sid",
    ],
)
def test_invalid_webhook_is_rejected(fields):
    # Given a webhook with a required field missing (None: left out) or malformed
    data = {key: value for key, value in {**form(), **fields}.items() if value is not None}

    # Then validation fails on that field
    with pytest.raises(ValidationError) as raised:
        InboundMessage.model_validate(data)
    assert [error["loc"] for error in raised.value.errors()] == [(next(iter(fields)),)]


# ---------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [
        ("nan", "-122.39"),
        ("37.78", "nan"),
        ("inf", "-122.39"),
        ("37.78", "-inf"),
        ("1e200", "-122.39"),
        ("90.0001", "-122.39"),
        ("-90.0001", "-122.39"),
        ("37.78", "180.0001"),
        ("37.78", "-180.0001"),
    ],
)
def test_a_location_off_the_globe_is_rejected(latitude, longitude):
    with pytest.raises(ValidationError) as raised:
        InboundMessage.model_validate(form(Latitude=latitude, Longitude=longitude))

    assert {error["loc"][0] for error in raised.value.errors()} == {"location"}


@pytest.mark.parametrize(("latitude", "longitude"), [("90", "180"), ("-90", "-180"), ("0", "0")])
def test_the_poles_and_the_antimeridian_are_on_the_globe(latitude, longitude):
    message = InboundMessage.model_validate(form(Latitude=latitude, Longitude=longitude))

    assert message.location is not None
    assert (message.location.latitude, message.location.longitude) == (
        float(latitude),
        float(longitude),
    )


def test_ten_media_are_the_most_a_message_carries():
    fields = {f"MediaUrl{i}": f"https://api.twilio.com/media/ME{i}" for i in range(10)}

    message = InboundMessage.model_validate(form(NumMedia="10", **fields))

    assert [media.url for media in message.media] == list(fields.values())


@pytest.mark.parametrize("num_media", ["11", "3000000", "9" * 5000, "\u0663", "-1", "1.5"])
def test_a_num_media_that_is_not_0_to_10_in_ascii_digits_is_rejected(num_media):
    with pytest.raises(ValidationError) as raised:
        InboundMessage.model_validate(form(NumMedia=num_media))

    assert [error["loc"] for error in raised.value.errors()] == [("NumMedia",)]


class CountingFields(dict[str, str]):
    """The form's fields, counting every lookup by name."""

    lookups = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.lookups += 1
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.lookups += 1
        return super().__getitem__(key)


def test_grouping_the_media_looks_up_no_more_fields_than_the_form_has():
    # Given a form that claims three million media and carries none
    fields = CountingFields(form(NumMedia="3000000"))

    # When it is validated (and refused)
    with pytest.raises(ValidationError):
        InboundMessage.model_validate(fields)

    # Then the grouping's work followed the fields present, not NumMedia
    assert fields.lookups <= len(fields)


@pytest.mark.parametrize(
    "index", ["\u0660", "\uff10", "00", "10"], ids=["arabic-indic", "fullwidth", "00", "10"]
)
def test_a_media_field_with_an_index_twilio_never_writes_is_kept_as_sent(index):
    # Twilio numbers media 0 to 9 in ASCII digits: anything else is no media, but is kept
    fields = {f"MediaUrl{index}": "https://api.twilio.com/media/ME0"}

    message = InboundMessage.model_validate(form(NumMedia="0", **fields))

    assert message.media == ()
    assert message.twilio_extra_fields == fields


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("MessageSid", "SM" + "\u0660" * 32),
        ("MessageSid", "SM" + "\uff10" * 32),
        ("MessageSid", "SM" + "a" * 32 + "\n"),
        ("AccountSid", "AC" + "\u0661" * 32),
        ("AccountSid", "AC" + "1" * 32 + "\n"),
        ("From", "whatsapp:+1\u0665\u0660\u0660\u0665\u0665\u0665\u0660\u0660\u0660\u0666"),
        ("To", "whatsapp:+14155238\uff18\uff18\uff16"),
    ],
    ids=[
        "sid-arabic-indic-digits",
        "sid-fullwidth-digits",
        "sid-trailing-newline",
        "account-arabic-indic-digits",
        "account-trailing-newline",
        "from-arabic-indic-digits",
        "to-fullwidth-digits",
    ],
)
def test_identities_are_ascii_only(field, value):
    with pytest.raises(ValidationError) as raised:
        InboundMessage.model_validate(form(**{field: value}))

    assert [error["loc"] for error in raised.value.errors()] == [(field,)]
