"""Twilio's inbound WhatsApp webhook (form fields as Twilio names them).

Fields Twilio adds later are kept (``model_extra``), never rejected.
"""

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from whatsapp_gateway.models.accounts import ACCOUNT_SID_PATTERN
from whatsapp_gateway.models.fields import WhatsAppAddress

# Explicit ASCII ranges, never \d or \w: other scripts' digits would pass.
MESSAGE_SID_PATTERN = r"^(SM|MM)[0-9a-fA-F]{32}$"
# A message carries at most 10 media (Twilio's limit), numbered MediaUrl0 to MediaUrl9.
MAX_MEDIA = 10
_MEDIA_COUNTS = frozenset(str(count) for count in range(MAX_MEDIA + 1))
_MEDIA_FIELD = re.compile(r"Media(?P<part>Url|ContentType)(?P<index>[0-9])")


class Media(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    content_type: str | None = None


class Referral(BaseModel):
    """Present when the contact wrote from a click-to-WhatsApp ad or post."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    source_id: str | None = Field(None, alias="ReferralSourceId")
    source_type: str | None = Field(None, alias="ReferralSourceType")
    source_url: str | None = Field(None, alias="ReferralSourceUrl")
    headline: str | None = Field(None, alias="ReferralHeadline")
    body: str | None = Field(None, alias="ReferralBody")
    media_id: str | None = Field(None, alias="ReferralMediaId")
    media_content_type: str | None = Field(None, alias="ReferralMediaContentType")
    media_url: str | None = Field(None, alias="ReferralMediaUrl")
    ctwa_clid: str | None = Field(None, alias="ReferralCtwaClid")


class Location(BaseModel):
    model_config = ConfigDict(frozen=True)

    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    address: str | None = None
    label: str | None = None


class InboundMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    message_sid: str = Field(alias="MessageSid", pattern=MESSAGE_SID_PATTERN)
    account_sid: str = Field(alias="AccountSid", pattern=ACCOUNT_SID_PATTERN)
    messaging_service_sid: str | None = Field(None, alias="MessagingServiceSid")
    from_: WhatsAppAddress = Field(alias="From")
    to: WhatsAppAddress = Field(alias="To")
    body: str = Field("", alias="Body")
    num_media: int = Field(0, alias="NumMedia", ge=0, le=MAX_MEDIA)
    media: tuple[Media, ...] = ()
    profile_name: str | None = Field(None, alias="ProfileName")
    wa_id: str | None = Field(None, alias="WaId")
    external_user_id: str | None = Field(None, alias="ExternalUserId")
    message_type: str | None = Field(None, alias="MessageType")
    button_payload: str | None = Field(None, alias="ButtonPayload")
    button_text: str | None = Field(None, alias="ButtonText")
    location: Location | None = None
    original_replied_message_sid: str | None = Field(None, alias="OriginalRepliedMessageSid")
    original_replied_message_sender: str | None = Field(None, alias="OriginalRepliedMessageSender")
    referral: Referral | None = None

    @model_validator(mode="before")
    @classmethod
    def _group_fields(cls, data: Any) -> Any:
        """Gathers Twilio's flat MediaUrlN/MediaContentTypeN pairs, location and referral
        fields into their objects."""
        if not isinstance(data, Mapping):
            return data
        fields = {key: value for key, value in data.items() if not _MEDIA_FIELD.fullmatch(key)}
        fields["media"] = _media(data)
        if data.get("Latitude") and data.get("Longitude"):
            fields["location"] = {
                "latitude": fields.pop("Latitude"),
                "longitude": fields.pop("Longitude"),
                "address": fields.pop("Address", None),
                "label": fields.pop("Label", None),
            }
        # Only the named referral fields: Twilio sends ReferralNumMedia=0 with every message,
        # which is no referral (and stays among the extra fields).
        referral = {key: fields.pop(key) for key in _REFERRAL_FIELDS if key in fields}
        if any(referral.values()):
            fields["referral"] = referral
        return fields

    @property
    def twilio_extra_fields(self) -> dict[str, str]:
        """Fields this model does not name, as Twilio sent them."""
        return {key: str(value) for key, value in (self.model_extra or {}).items()}


_REFERRAL_FIELDS = frozenset(
    field.alias for field in Referral.model_fields.values() if field.alias is not None
)


def _media(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The media below NumMedia, in order, from the fields present: the work never depends on
    NumMedia itself (a forged NumMedia=3000000 is refused by its field, after this)."""
    num_media = str(data.get("NumMedia") or "0")
    count = int(num_media) if num_media in _MEDIA_COUNTS else 0
    media: dict[int, dict[str, Any]] = {}
    for key, value in data.items():
        field = _MEDIA_FIELD.fullmatch(key)
        if field and int(field["index"]) < count:
            part = "url" if field["part"] == "Url" else "content_type"
            media.setdefault(int(field["index"]), {})[part] = value
    return [media[index] for index in sorted(media) if media[index].get("url")]
