"""Templates as Twilio's Content API and Meta's review describe them."""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from whatsapp_gateway.domain.windows import Category

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# What Twilio refuses in a variable's value (error 21656).
MAX_VARIABLE_LENGTH = 1600
_FORBIDDEN_IN_VALUE = re.compile(r"[\n\t]| {5,}")
# Content types WhatsApp delivers only inside an open customer service window.
SESSION_ONLY_TYPES = frozenset({"twilio/list-picker", "twilio/location"})


class ApprovalStatus(StrEnum):
    """WhatsApp's approval of a template, as Twilio reports it (lower case)."""

    UNSUBMITTED = "unsubmitted"
    RECEIVED = "received"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAUSED = "paused"
    DISABLED = "disabled"

    @classmethod
    def from_twilio(cls, value: str | None) -> "ApprovalStatus":
        """Twilio's status in any case; none (no WhatsApp approval request) is unsubmitted,
        and a status this gateway does not know is treated as still pending: never approved."""
        if not value:
            return cls.UNSUBMITTED
        try:
            return cls(value.strip().lower())
        except ValueError:
            return cls.PENDING


@dataclass(frozen=True, slots=True)
class Template:
    """A template as the last sync saw it. ``variables`` are the samples shown to Meta for
    review, never values sent to a customer; ``placeholders`` are what its content uses."""

    sid: str
    name: str
    language: str
    status: ApprovalStatus
    category: Category | None
    types: frozenset[str]
    placeholders: frozenset[str]
    deleted: bool = False
    account_sid: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    rejection_reason: str | None = None

    @property
    def session_only(self) -> bool:
        """True when every content type of the template needs an open CSW."""
        return bool(self.types) and self.types <= SESSION_ONLY_TYPES


def placeholders_in(texts: Iterable[str]) -> frozenset[str]:
    """The placeholder names (``{{1}}``, ``{{name}}``) used in a template's texts."""
    return frozenset(name for text in texts for name in _PLACEHOLDER.findall(text))


def missing_variables(template: Template, variables: Mapping[str, str]) -> list[str]:
    return sorted(template.placeholders - variables.keys(), key=_natural)


def invalid_variables(variables: Mapping[str, str]) -> list[str]:
    """Names of the values Twilio would refuse: empty, with a newline or a tab, with more than
    four consecutive spaces, or longer than 1,600 characters."""
    return sorted(
        (
            name
            for name, value in variables.items()
            if not value.strip()
            or len(value) > MAX_VARIABLE_LENGTH
            or _FORBIDDEN_IN_VALUE.search(value)
        ),
        key=_natural,
    )


def _natural(name: str) -> tuple[int, str]:
    # ASCII digits only: str.isdigit() is also true for "²" (int() raises) and for the
    # Arabic-Indic five (read as 5).
    return (int(name), "") if name.isascii() and name.isdigit() else (10**9, name)
