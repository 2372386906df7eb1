"""``GET /v1/templates``: the synced templates, as the last sync saw them."""

from datetime import datetime

from pydantic import BaseModel

from whatsapp_gateway.domain.templates import Template
from whatsapp_gateway.domain.windows import Category


class TemplateSummary(BaseModel):
    sid: str
    account_sid: str
    name: str
    language: str
    category: Category | None
    status: str  # WhatsApp's approval status, or "deleted" once Twilio no longer lists it
    rejection_reason: str | None
    variables: dict[str, str]  # the samples shown to Meta, never sent to a customer
    types: list[str]
    placeholders: list[str]
    last_seen_at: datetime | None

    @classmethod
    def of(cls, template: Template, last_seen_at: datetime | None) -> "TemplateSummary":
        return cls(
            sid=template.sid,
            account_sid=template.account_sid,
            name=template.name,
            language=template.language,
            category=template.category,
            status="deleted" if template.deleted else template.status.value,
            rejection_reason=template.rejection_reason,
            variables=dict(template.variables),
            types=sorted(template.types),
            placeholders=sorted(template.placeholders),
            last_seen_at=last_seen_at,
        )


class TemplateList(BaseModel):
    templates: list[TemplateSummary]


class SyncStarted(BaseModel):
    status: str = "started"
