"""Twilio's Content API: a template as ``ContentAndApprovals`` lists it (fields Twilio adds
later are ignored), read into the gateway's Template."""

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from whatsapp_gateway.domain.templates import ApprovalStatus, Template, placeholders_in
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.models.accounts import ACCOUNT_SID_PATTERN
from whatsapp_gateway.models.messages import CONTENT_SID_PATTERN

TEMPLATE_CATEGORIES = frozenset({Category.MARKETING, Category.UTILITY, Category.AUTHENTICATION})
AUTHENTICATION_TYPE = "whatsapp/authentication"


class WhatsAppApproval(BaseModel):
    """Meta's review of a template, as Twilio reports it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: str | None = None
    category: str | None = None
    rejection_reason: str | None = None


class ContentAndApprovals(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sid: str = Field(pattern=CONTENT_SID_PATTERN)
    account_sid: str = Field(pattern=ACCOUNT_SID_PATTERN)
    # Nullable in Twilio's description: a template created without a name has none.
    friendly_name: str | None = None
    language: str | None = None
    variables: dict[str, Any] | None = None
    types: dict[str, Any] | None = None
    approval_requests: dict[str, Any] | None = None

    @property
    def whatsapp_approval(self) -> WhatsAppApproval | None:
        """The WhatsApp approval in either of Twilio's shapes: flat, as ContentAndApprovals
        gives it, or nested under ``whatsapp``, as ApprovalRequests does."""
        requests = self.approval_requests or {}
        nested = requests.get("whatsapp")
        approval = nested if isinstance(nested, Mapping) else requests
        if not approval.get("status"):
            return None
        return WhatsAppApproval.model_validate(approval)

    def template(self) -> Template:
        approval = self.whatsapp_approval
        category = approval.category if approval else None
        return Template(
            sid=self.sid,
            account_sid=self.account_sid,
            name=self.friendly_name or "",
            language=self.language or "",
            status=ApprovalStatus.from_twilio(approval.status if approval else None),
            category=_category(category),
            types=frozenset(self.types or {}),
            placeholders=_placeholders(self.types or {}),
            variables={
                name: "" if value is None else str(value)
                for name, value in (self.variables or {}).items()
            },
            rejection_reason=(approval.rejection_reason or None) if approval else None,
        )


def _category(meta: str | None) -> Category | None:
    """Meta's category of a template; one this gateway does not know (or ``service``, which
    is no template category) leaves the template unsendable."""
    try:
        category = Category.from_meta(meta) if meta else None
    except ValueError:
        return None
    return category if category in TEMPLATE_CATEGORIES else None


def _placeholders(types: Mapping[str, Any]) -> frozenset[str]:
    """What the content's texts use; an authentication template's body is WhatsApp's own,
    and the one-time code it carries is always variable 1."""
    found = placeholders_in(_texts(types))
    return found | {"1"} if AUTHENTICATION_TYPE in types else found


def _texts(node: object) -> Iterator[str]:
    """Every text of a content's types (bodies, titles, buttons, URLs), where placeholders
    can stand."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)
