"""What becomes of a message SQS gave up on: its SQS message reached the send dead-letter
queue, past the send worker's own attempts (SQS's safety net: docs/decisions.md).

The message ends ``failed`` with ``dead_lettered`` and its ``message.status_changed`` event,
once, whoever enqueued it; a message that was sent or ended otherwise stays as it is. The SQS
message can then be deleted: the message's request stays in the messages table.
"""

from datetime import datetime

from pydantic import ValidationError

from whatsapp_gateway.domain.policy import PolicyViolationError
from whatsapp_gateway.errors import ApiError
from whatsapp_gateway.models.accounts import TwilioAccounts
from whatsapp_gateway.outbound import OutboundRecord
from whatsapp_gateway.sending import WorkerStore, queued_message
from whatsapp_gateway.status_changes import (
    ConversationStore,
    EventPublisher,
    publish_status_changes,
)

DEAD_LETTERED = "dead_lettered"


def end_dead_lettered(
    body: str,
    *,
    message_id: str,
    accounts: TwilioAccounts,
    store: WorkerStore,
    conversations: ConversationStore,
    events: EventPublisher,
    now: datetime,
) -> OutboundRecord | None:
    """Ends a dead-lettered message failed and announces it; the message, or None when it was
    sent or ended before (or is not even a request: recorded failed, with no contact to
    announce it to). Idempotent: a second delivery changes nothing and announces nothing,
    unless the first died before its event went out."""
    try:
        # What it is, should it never have been recorded (enqueued directly, and every
        # delivery failed before the worker could record it).
        draft = queued_message(body, message_id=message_id, accounts=accounts, now=now)
    except (ValidationError, PolicyViolationError, ApiError):
        draft = None
    record = store.record_failed(
        message_id,
        DEAD_LETTERED,
        "the send worker never finished with it: SQS moved it to the dead-letter queue",
        now,
        draft=draft,
    )
    if record is not None:
        publish_status_changes(record, store=store, conversations=conversations, events=events)
    return record
