"""Accepting a WhatsApp message to send: who sends it, whether WhatsApp would take it, and its
record. The API accepts it and enqueues it; the worker (``sending``) checks the same rules again
right before Twilio is called. A refused message never reaches Twilio.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.policy import (
    Allowed,
    FreeForm,
    PolicyCode,
    PolicyViolationError,
    TemplateSend,
    check_send,
)
from whatsapp_gateway.domain.statuses import ENDED, MessageStatus
from whatsapp_gateway.domain.templates import Template
from whatsapp_gateway.domain.windows import Category, ContactState
from whatsapp_gateway.errors import ApiError
from whatsapp_gateway.models.accounts import TwilioAccount, TwilioAccounts
from whatsapp_gateway.models.messages import (
    Accepted,
    SendMessageRequest,
    StatusEntry,
    TemplateRef,
)


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """An outbound message as the messages table holds it."""

    message_id: str
    account_sid: str
    sender: Address
    contact: Address
    request: SendMessageRequest
    created_at: datetime
    status: MessageStatus = MessageStatus.ACCEPTED
    category: Category | None = None
    template_sid: str | None = None
    twilio_sid: str | None = None
    attempt_started_at: datetime | None = None
    # The send worker's attempts at it (its deliveries that got as far as reading the message).
    attempts: int = 0
    error_code: str | None = None
    history: tuple[StatusEntry, ...] = ()
    # Status changes whose events a crash kept from the bus: published by the next delivery.
    unpublished: tuple[StatusEntry, ...] = ()

    @property
    def done(self) -> bool:
        """Sent to Twilio, or ended: nothing left for the worker to do."""
        return self.twilio_sid is not None or self.status in ENDED


@dataclass(frozen=True, slots=True)
class SendDecision:
    """Who sends, through which account, with which synced template, and the category the
    message opens on delivery."""

    sender: Address
    account: TwilioAccount
    template: Template | None
    allowed: Allowed


class PolicyReader(Protocol):
    def contact_state(self, sender: Address, contact: Address) -> ContactState: ...


class TemplateReader(Protocol):
    def template_by_sid(self, account_sid: str, sid: str) -> Template | None: ...

    def template_by_name(self, account_sid: str, name: str, language: str) -> Template | None: ...


def resolve_sender(
    request: SendMessageRequest, accounts: TwilioAccounts
) -> tuple[Address, TwilioAccount]:
    sender = accounts.sender_or_default(request.from_)
    if sender is None:
        raise ApiError(400, "sender_required", "several senders are configured: give 'from'")
    account = accounts.account_of(sender)
    if account is None:
        raise PolicyViolationError(
            PolicyCode.UNKNOWN_SENDER, f"{sender.masked} is not a WhatsApp sender of this gateway"
        )
    return sender, account


def decide(
    request: SendMessageRequest,
    *,
    accounts: TwilioAccounts,
    state: PolicyReader,
    templates: TemplateReader,
    now: datetime,
) -> SendDecision:
    """The send policy for ``request`` at ``now``; raises PolicyViolationError (or ApiError
    when no sender can be chosen)."""
    sender, account = resolve_sender(request, accounts)
    template = _template(request.template, account, templates) if request.template else None
    content: FreeForm | TemplateSend = (
        TemplateSend(
            template=template, requested=str(request.template), variables=request.variables
        )
        if request.template
        else FreeForm()
    )
    allowed = check_send(
        content, sender_known=True, state=state.contact_state(sender, request.to), now=now
    )
    return SendDecision(sender=sender, account=account, template=template, allowed=allowed)


def _template(
    ref: TemplateRef, account: TwilioAccount, templates: TemplateReader
) -> Template | None:
    if ref.content_sid is not None:
        return templates.template_by_sid(account.account_sid, ref.content_sid)
    # TemplateRef guarantees a name and a language when there is no content_sid.
    return templates.template_by_name(account.account_sid, str(ref.name), str(ref.language))


class AcceptStore(Protocol):
    def outbound_message(self, message_id: str) -> OutboundRecord | None: ...

    def create_accepted(self, record: OutboundRecord) -> None: ...

    def record_failed(
        self, message_id: str, code: str, message: str, now: datetime
    ) -> OutboundRecord | None: ...


class Enqueuer(Protocol):
    def enqueue(self, *, message_id: str, sender: Address, contact: Address, body: str) -> None: ...


# The namespace of the ids derived from an Idempotency-Key: never to change, or the retry of an
# earlier key would get another id.
_KEYED_MESSAGE_IDS = uuid.UUID("5b0c3f0e-8a4e-4c1b-9d3a-2f6b7c8d9e10")


def new_message_id() -> str:
    return uuid.uuid4().hex


def keyed_message_id(caller_key: str) -> str:
    """The id of the message a caller's Idempotency-Key names: the same for every retry, so
    that a retry after a crash that lost the first answer finds the first message."""
    return uuid.uuid5(_KEYED_MESSAGE_IDS, caller_key).hex


class IdempotencyKeyReusedError(ApiError):
    def __init__(self) -> None:
        super().__init__(
            409, "idempotency_key_reused", "this Idempotency-Key was used with another body"
        )


def accept_message(
    request: SendMessageRequest,
    *,
    message_id: str,
    keyed: bool,
    accounts: TwilioAccounts,
    state: PolicyReader,
    templates: TemplateReader,
    store: AcceptStore,
    queue: Enqueuer,
    now: datetime,
) -> Accepted:
    """Checks the policy, records the message as accepted and enqueues it for the worker.

    ``keyed``: ``message_id`` comes from the caller's Idempotency-Key, so the caller's retry of
    a request that died half-way reaches this message again, whatever the rules say by then."""
    if keyed and (recorded := store.outbound_message(message_id)) is not None:
        if recorded.request != request:
            raise IdempotencyKeyReusedError
        if recorded.status is MessageStatus.ACCEPTED:
            # The first try may have died before the queue took it; the queue deduplicates by
            # id, and the worker never sends a message twice if it did.
            _enqueue(recorded, queue)
        return Accepted(id=message_id)
    decision = decide(request, accounts=accounts, state=state, templates=templates, now=now)
    record = _record(message_id, request, decision, now)
    store.create_accepted(record)
    try:
        _enqueue(record, queue)
    except Exception:
        if not keyed:
            # Never left accepted without a way to be sent (a keyed retry enqueues it).
            store.record_failed(message_id, "enqueue_failed", "the send queue refused it", now)
        raise
    return Accepted(id=message_id)


def _enqueue(record: OutboundRecord, queue: Enqueuer) -> None:
    queue.enqueue(
        message_id=record.message_id,
        sender=record.sender,
        contact=record.contact,
        body=record.request.model_dump_json(by_alias=True, exclude_defaults=True),
    )


def _record(
    message_id: str, request: SendMessageRequest, decision: SendDecision, now: datetime
) -> OutboundRecord:
    return OutboundRecord(
        message_id=message_id,
        account_sid=decision.account.account_sid,
        sender=decision.sender,
        contact=request.to,
        request=request,
        created_at=now,
        category=decision.allowed.category,
        template_sid=decision.template.sid if decision.template else None,
    )
