"""What the gateway asks of Twilio's Messages API and what Twilio answers, with no twilio
import: the use cases speak these, only the adapter speaks the SDK."""

from typing import Self

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from whatsapp_gateway.models.fields import WhatsAppAddress
from whatsapp_gateway.models.inbound import MESSAGE_SID_PATTERN
from whatsapp_gateway.models.messages import CONTENT_SID_PATTERN, HttpsUrl


class SendRequest(BaseModel):
    """One WhatsApp message for Twilio: free-form (a body and/or media) or a template (a Content
    SID and the values of its placeholders)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_: WhatsAppAddress
    to: WhatsAppAddress
    body: str | None = Field(None, min_length=1)
    media_urls: tuple[HttpsUrl, ...] = ()
    content_sid: str | None = Field(None, pattern=CONTENT_SID_PATTERN)
    content_variables: dict[str, str] = Field(default_factory=dict)
    status_callback: AnyHttpUrl | None = None

    @model_validator(mode="after")
    def _one_kind_of_content(self) -> Self:
        free_form = self.body is not None or bool(self.media_urls)
        if free_form == (self.content_sid is not None):
            raise ValueError("either a body and/or media_urls, or a content_sid")
        if self.content_variables and self.content_sid is None:
            raise ValueError("content_variables go with a content_sid")
        return self


class SentMessage(BaseModel):
    """A message as Twilio holds it."""

    model_config = ConfigDict(frozen=True)

    sid: str = Field(pattern=MESSAGE_SID_PATTERN)
    status: str = Field(min_length=1)


class ListedMessage(SentMessage):
    """A message as Twilio's Messages list shows it, with what reconciling an attempt compares
    (its ``date_sent`` is no use: null until Twilio actually sends the message)."""

    date_created: AwareDatetime
    body: str = ""
