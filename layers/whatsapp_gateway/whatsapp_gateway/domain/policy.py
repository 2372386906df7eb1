"""The send policy: what WhatsApp would refuse, refused before Twilio is paid for it.

Checked when a send is accepted and again right before Twilio is called, as a pure function
of what the gateway knows of the (sender, contact) pair and of the template, at ``now``.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from whatsapp_gateway.domain.templates import (
    ApprovalStatus,
    Template,
    invalid_variables,
    missing_variables,
)
from whatsapp_gateway.domain.windows import Category, ContactState


class PolicyCode(StrEnum):
    """Stable error codes of the public contract."""

    UNKNOWN_SENDER = "unknown_sender"
    OUTSIDE_SERVICE_WINDOW = "outside_service_window"
    TEMPLATE_NOT_FOUND = "template_not_found"
    TEMPLATE_NOT_APPROVED = "template_not_approved"
    TEMPLATE_VARIABLES_MISSING = "template_variables_missing"
    TEMPLATE_VARIABLES_INVALID = "template_variables_invalid"
    CONTACT_OPTED_OUT = "contact_opted_out"


class PolicyViolationError(Exception):
    """A send WhatsApp would refuse."""

    def __init__(self, code: PolicyCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class FreeForm:
    """A body and/or media: allowed only inside the customer service window."""


@dataclass(frozen=True, slots=True)
class TemplateSend:
    """A template as the caller named it; ``template`` is None when no synced template matches."""

    template: Template | None
    requested: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Allowed:
    """The send may go out; on delivery it opens a conversation window of this category."""

    category: Category


def check_send(
    content: FreeForm | TemplateSend, *, sender_known: bool, state: ContactState, now: datetime
) -> Allowed:
    """Allowed, or raises PolicyViolationError with the first rule the send breaks."""
    if not sender_known:
        raise PolicyViolationError(
            PolicyCode.UNKNOWN_SENDER, "the sender is not a WhatsApp sender of this gateway"
        )
    window_open = state.service_window_open(now)
    if isinstance(content, FreeForm):
        if not window_open:
            raise _outside_window("free-form messages")
        return Allowed(Category.SERVICE)
    template = _usable_template(content)
    if missing := missing_variables(template, content.variables):
        raise PolicyViolationError(
            PolicyCode.TEMPLATE_VARIABLES_MISSING,
            f"template '{template.name}' needs a value for: {', '.join(missing)}",
        )
    if invalid := invalid_variables(content.variables):
        raise PolicyViolationError(
            PolicyCode.TEMPLATE_VARIABLES_INVALID,
            "empty, multi-line, tab, over 4 consecutive spaces or over 1,600 characters: "
            + ", ".join(invalid),
        )
    if state.opted_out:
        raise PolicyViolationError(
            PolicyCode.CONTACT_OPTED_OUT, "the contact opted out of business-initiated messages"
        )
    if template.session_only and not window_open:
        raise _outside_window(f"templates of type {', '.join(sorted(template.types))}")
    return Allowed(_category(template))


def _usable_template(content: TemplateSend) -> Template:
    template = content.template
    if template is None or template.deleted:
        raise PolicyViolationError(
            PolicyCode.TEMPLATE_NOT_FOUND, f"no synced template matches {content.requested}"
        )
    if template.status is not ApprovalStatus.APPROVED:
        raise PolicyViolationError(
            PolicyCode.TEMPLATE_NOT_APPROVED,
            f"template '{template.name}' is {template.status.value}, not approved for WhatsApp",
        )
    return template


def _category(template: Template) -> Category:
    if template.category is None:
        # An approved template always has Meta's category; a missing one is a sync defect.
        raise PolicyViolationError(
            PolicyCode.TEMPLATE_NOT_APPROVED, f"template '{template.name}' has no category"
        )
    return template.category


def _outside_window(what: str) -> PolicyViolationError:
    return PolicyViolationError(
        PolicyCode.OUTSIDE_SERVICE_WINDOW,
        f"{what} may be sent only within 24 hours of the contact's last message; "
        "send an approved template instead",
    )
