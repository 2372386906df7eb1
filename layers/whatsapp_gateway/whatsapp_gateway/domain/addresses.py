"""WhatsApp addresses as Twilio writes them: ``whatsapp:+15551234567`` or, for a user known only
by Meta's business-scoped user id (BSUID), ``whatsapp:US.13491208655302741918``."""

import re
from dataclasses import dataclass

PREFIX = "whatsapp:"
# ASCII digits only: Python's \d takes every script's digits, and the same number written in
# Arabic-Indic digits would be a second identity. Matched whole: "$" lets a trailing newline in.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# BSUID: ISO country code, a dot, up to 128 alphanumerics (an "ENT." parent id in between).
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


class InvalidAddressError(ValueError):
    """A string that is not a WhatsApp address."""


@dataclass(frozen=True, slots=True)
class Address:
    """A WhatsApp identity: a phone number in E.164 or a business-scoped user id."""

    id: str

    @classmethod
    def parse(cls, value: str) -> "Address":
        """Parses ``whatsapp:<id>``, the only form Twilio uses on the WhatsApp channel."""
        if not value.startswith(PREFIX):
            raise InvalidAddressError(f"a WhatsApp address starts with '{PREFIX}'")
        return cls.from_id(value.removeprefix(PREFIX))

    @classmethod
    def from_id(cls, value: str) -> "Address":
        """Accepts an E.164 number (``+15551234567``) or a BSUID, with or without the prefix."""
        bare = value.removeprefix(PREFIX).strip()
        if not (_E164.fullmatch(bare) or _BSUID.fullmatch(bare)):
            raise InvalidAddressError(
                "expected an E.164 phone number (+15551234567) or a WhatsApp user id"
            )
        return cls(bare)

    @property
    def whatsapp(self) -> str:
        """The address as Twilio wants it in From/To."""
        return PREFIX + self.id

    @property
    def phone_number(self) -> str | None:
        """The E.164 number, or None for a contact known only by a business-scoped id."""
        return self.id if self.id.startswith("+") else None

    @property
    def masked(self) -> str:
        """Safe for logs: keeps the last four characters only."""
        return f"{PREFIX}***{self.id[-4:]}"

    def __str__(self) -> str:
        return self.whatsapp
