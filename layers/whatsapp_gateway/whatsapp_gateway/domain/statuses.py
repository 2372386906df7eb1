"""An outbound message's status only moves forward, so that Twilio's duplicated and
out-of-order status callbacks are harmless.

``accepted`` (by the gateway) < ``queued`` < ``sending`` < ``sent`` < ``delivered`` < ``read``;
``failed`` and ``undelivered`` end a message, unless it was already delivered or read.
"""

from enum import StrEnum


class MessageStatus(StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"


_PROGRESS = (
    MessageStatus.ACCEPTED,
    MessageStatus.QUEUED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
)
ENDED = frozenset({MessageStatus.FAILED, MessageStatus.UNDELIVERED})
REACHED_CONTACT = frozenset({MessageStatus.DELIVERED, MessageStatus.READ})


def statuses_before(new: MessageStatus) -> frozenset[MessageStatus]:
    """The statuses a message may be in for ``new`` to replace it: the store turns this set
    into its conditional update, so the rule is decided here and enforced atomically there."""
    if new in ENDED:
        return frozenset(_PROGRESS) - REACHED_CONTACT
    return frozenset(_PROGRESS[: _PROGRESS.index(new)])


def moves_forward(current: MessageStatus, new: MessageStatus) -> bool:
    return current in statuses_before(new)


def reaches_contact(previous: MessageStatus, new: MessageStatus) -> bool:
    """True for the first delivered-or-read: the moment a conversation window opens."""
    return new in REACHED_CONTACT and previous not in REACHED_CONTACT
