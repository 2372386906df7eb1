"""Accepting a WhatsApp message to send: who sends it, whether WhatsApp would take it, and its
record. The API accepts it and enqueues it; the worker (``sending``) checks the same rules again
right before Twilio is called. A refused message never reaches Twilio.
"""

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
            PolicyCode.UNKNOWN_SENDER, f"{sender} is not a WhatsApp sender of this gateway"
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
    def create_accepted(self, record: OutboundRecord) -> None: ...

    def record_failed(
        self, message_id: str, code: str, message: str, now: datetime
    ) -> OutboundRecord | None: ...


class Enqueuer(Protocol):
    def enqueue(self, *, message_id: str, sender: Address, contact: Address, body: str) -> None: ...


def accept_message(
    request: SendMessageRequest,
    *,
    message_id: str,
    accounts: TwilioAccounts,
    state: PolicyReader,
    templates: TemplateReader,
    store: AcceptStore,
    queue: Enqueuer,
    now: datetime,
) -> Accepted:
    """Checks the policy, records the message as accepted and enqueues it for the worker."""
    decision = decide(request, accounts=accounts, state=state, templates=templates, now=now)
    record = _record(message_id, request, decision, now)
    store.create_accepted(record)
    try:
        queue.enqueue(
            message_id=message_id,
            sender=record.sender,
            contact=record.contact,
            body=request.model_dump_json(by_alias=True, exclude_defaults=True),
        )
    except Exception:
        # Never left accepted without a way to be sent: the caller's retry makes a new one.
        store.record_failed(message_id, "enqueue_failed", "the send queue refused it", now)
        raise
    return Accepted(id=message_id)


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
