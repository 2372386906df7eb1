"""``POST /v1/messages`` (and the send queue, which accepts the same JSON), ``GET
/v1/messages/{id}``, and Twilio's status callback."""

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    UrlConstraints,
    field_validator,
    model_validator,
)

from whatsapp_gateway.domain.statuses import MessageStatus
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.models.accounts import ACCOUNT_SID_PATTERN
from whatsapp_gateway.models.fields import ContactAddress, WhatsAppAddress
from whatsapp_gateway.models.inbound import MESSAGE_SID_PATTERN

CONTENT_SID_PATTERN = r"^HX[0-9a-fA-F]{32}$"
# Twilio refuses a longer body (error 21617) on every channel, WhatsApp included.
MAX_BODY_LENGTH = 1600

HttpsUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["https"])]
# Twilio's limits on a template's variables: at most 100, named by at most 16 ASCII letters,
# digits or underscores (a value's own limits are the send policy's: template_variables_invalid).
MAX_VARIABLES = 100
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,16}$")]


class TemplateRef(BaseModel):
    """A synced template, by its Content SID or by name and language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content_sid: str | None = Field(None, pattern=CONTENT_SID_PATTERN)
    # Bounded so that the account, name and language stay within DynamoDB's 2,048-byte key.
    name: str | None = Field(None, min_length=1, max_length=256)
    language: str | None = Field(None, min_length=2, max_length=16)

    @model_validator(mode="after")
    def _one_way_to_name_it(self) -> Self:
        by_name = self.name is not None or self.language is not None
        if (self.content_sid is not None) == by_name:
            raise ValueError("give either content_sid, or name and language")
        if by_name and (self.name is None or self.language is None):
            raise ValueError("name and language go together")
        return self

    def __str__(self) -> str:
        return self.content_sid or f"'{self.name}' ({self.language})"


class SendMessageRequest(BaseModel):
    """A message to send: free-form (body and/or one media) or a template with its values."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    to: ContactAddress
    from_: ContactAddress | None = Field(None, alias="from")
    body: str | None = Field(None, min_length=1, max_length=MAX_BODY_LENGTH)
    # WhatsApp delivers one media per message; Twilio would drop the others silently.
    media_urls: tuple[HttpsUrl, ...] = Field((), max_length=1)
    template: TemplateRef | None = None
    variables: dict[VariableName, str] = Field(default_factory=dict, max_length=MAX_VARIABLES)

    @model_validator(mode="after")
    def _one_kind_of_content(self) -> Self:
        free_form = self.body is not None or bool(self.media_urls)
        if free_form == (self.template is not None):
            raise ValueError("give either body and/or media_urls, or a template")
        if self.variables and self.template is None:
            raise ValueError("variables go with a template")
        return self


class Accepted(BaseModel):
    id: str
    status: MessageStatus = MessageStatus.ACCEPTED


class StatusEntry(BaseModel):
    """One status a message went through, kept once, with Twilio's error (codes as text: the
    gateway's own codes, such as outside_service_window, stand beside Twilio's numbers)."""

    model_config = ConfigDict(frozen=True)

    status: MessageStatus
    at: datetime
    error_code: str | None = None
    error_message: str | None = None
    # False for a status reported out of order, after the message had moved past it.
    applied: bool = Field(True, exclude=True)


class TemplateView(BaseModel):
    sid: str
    name: str | None = None
    language: str | None = None


class MessageView(BaseModel):
    """``GET /v1/messages/{id}``."""

    id: str
    direction: str
    to: str
    from_: str = Field(serialization_alias="from")
    status: str
    status_history: list[StatusEntry]
    twilio_sid: str | None
    error_code: str | None
    error_message: str | None
    category: Category | None
    template: TemplateView | None
    body: str | None
    media_urls: list[str]
    created_at: datetime


# Every status Twilio reports of a message (its Messages API's message_enum_status).
TwilioStatus = Literal[
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "receiving",
    "received",
    "accepted",
    "scheduled",
    "read",
    "partially_delivered",
    "canceled",
]
# Twilio's `accepted` is a Messaging Service taking a message, not the gateway's own.
_TRACKED = {status.value: status for status in MessageStatus if status != MessageStatus.ACCEPTED}


class StatusCallback(BaseModel):
    """Twilio's status callback of an outbound message (fields Twilio adds later are kept)."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    message_sid: str = Field(alias="MessageSid", pattern=MESSAGE_SID_PATTERN)
    account_sid: str = Field(alias="AccountSid", pattern=ACCOUNT_SID_PATTERN)
    twilio_status: TwilioStatus = Field(alias="MessageStatus")
    from_: WhatsAppAddress = Field(alias="From")
    to: WhatsAppAddress = Field(alias="To")
    error_code: int | None = Field(None, alias="ErrorCode")
    error_message: str | None = Field(None, alias="ErrorMessage")

    @field_validator("error_code", "error_message", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def status(self) -> MessageStatus | None:
        """The status the message moves to; None for one Twilio reports that the gateway does
        not track (a Messaging Service's `accepted`, scheduling, inbound statuses)."""
        return _TRACKED.get(self.twilio_status)
