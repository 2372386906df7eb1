"""Opt-out keywords: a contact who writes one of them, as the whole message and in any case,
no longer receives business-initiated templates until they write an opt-in keyword."""

from enum import StrEnum

# The keywords WhatsApp businesses commonly honour (Twilio's own list for its channels).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "SUBSCRIBE", "OPTIN"})


class OptChange(StrEnum):
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"


def opt_change(body: str) -> OptChange | None:
    """The opt-out change a message body asks for, if it is exactly one keyword."""
    word = " ".join(body.split()).upper().rstrip(".!")
    if word in OPT_OUT_KEYWORDS:
        return OptChange.OPTED_OUT
    if word in OPT_IN_KEYWORDS:
        return OptChange.OPTED_IN
    return None
