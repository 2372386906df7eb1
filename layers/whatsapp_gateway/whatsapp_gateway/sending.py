"""The send worker's use case: one queued message sent at most once, after the WhatsApp rules
are checked again (a window can close while a message waits in the queue).

Exactly once, as far as the contact can tell: before calling Twilio the worker records the
attempt with a conditional write. A redelivered message whose attempt may have reached Twilio
(the worker died, or Twilio did not answer) is reconciled against Twilio's list of messages to
that contact since the attempt before it is sent again. One contact's messages share a FIFO
group, so at most one of them is in flight at a time and what Twilio lists is this attempt.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pydantic import ValidationError

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.policy import PolicyViolationError
from whatsapp_gateway.domain.twilio_errors import TwilioCallError
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.errors import ApiError, describe
from whatsapp_gateway.models.accounts import TwilioAccount, TwilioAccounts
from whatsapp_gateway.models.messages import SendMessageRequest
from whatsapp_gateway.models.twilio import ListedMessage, SendRequest, SentMessage
from whatsapp_gateway.outbound import (
    OutboundRecord,
    PolicyReader,
    SendDecision,
    TemplateReader,
    decide,
    resolve_sender,
)
from whatsapp_gateway.status_changes import (
    ConversationStore,
    EventPublisher,
    StatusStore,
    publish_status_changes,
)

# Reconciliation looks this far before the attempt: clocks of Lambda and Twilio differ.
RECONCILE_SLACK = timedelta(minutes=2)
# An attempt younger than this is still being handled (the worker's Twilio call takes 5 s at
# most); redeliveries come later: 30 s for a retry, the visibility timeout after a crash.
ATTEMPT_LEASE = timedelta(seconds=25)


class SendOutcome(StrEnum):
    SENT = "sent"
    RECONCILED = "reconciled"  # an earlier attempt had reached Twilio: not sent again
    ALREADY_DONE = "already_done"  # a redelivery of a message sent or ended before
    REFUSED = "refused"  # invalid or against the WhatsApp rules: failed, never sent
    FAILED = "failed"  # Twilio refused it: failed with Twilio's code
    EXHAUSTED = "exhausted"  # Twilio kept failing until the last attempt: retries_exhausted


class RetryLaterError(Exception):
    """Twilio is throttling or unavailable: SQS delivers the message again after a delay."""

    def __init__(self, reason: str, delay_seconds: int) -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


class UnexpectedSendError(Exception):
    """Handling a delivery failed on something other than Twilio's answer: a bug, a store or
    the bus unavailable (the cause is chained). ``attempts``: the worker's attempts at the
    message so far, this one included (SQS's receive count would also count the deliveries
    that only waited behind a failing message of the same contact)."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"the send worker failed unexpectedly (attempt {attempts})")
        self.attempts = attempts


class WorkerStore(StatusStore, Protocol):
    def claim_attempt(self, record: OutboundRecord, now: datetime) -> OutboundRecord | None: ...

    def count_attempt(self, record: OutboundRecord, now: datetime) -> int: ...

    def record_sent(
        self,
        message_id: str,
        twilio_sid: str,
        *,
        category: Category,
        template_sid: str | None,
        now: datetime,
    ) -> None: ...

    def record_failed(
        self,
        message_id: str,
        code: str,
        message: str,
        now: datetime,
        *,
        draft: OutboundRecord | None = None,
    ) -> OutboundRecord | None: ...

    def release_attempt(self, message_id: str) -> None: ...


class TwilioSender(Protocol):
    def send(self, account: TwilioAccount, request: SendRequest) -> SentMessage: ...

    def messages_to(
        self, account: TwilioAccount, sender: Address, contact: Address, since: datetime
    ) -> list[ListedMessage]: ...


def send_queued_message(
    body: str,
    *,
    message_id: str,
    max_attempts: int,
    accounts: TwilioAccounts,
    state: PolicyReader,
    templates: TemplateReader,
    store: WorkerStore,
    conversations: ConversationStore,
    events: EventPublisher,
    twilio: TwilioSender,
    status_callback_url: str,
    now: datetime,
) -> SendOutcome:
    """Sends one queued message, at most once; raises RetryLaterError for a passing failure,
    and UnexpectedSendError for any other once the message is known. A message that ends here
    (refused, or failed at Twilio) is announced on the bus."""

    def publish(record: OutboundRecord | None) -> None:
        if record is not None:
            publish_status_changes(record, store=store, conversations=conversations, events=events)

    try:
        draft = queued_message(body, message_id=message_id, accounts=accounts, now=now)
    except (ValidationError, PolicyViolationError, ApiError) as error:
        # Whoever enqueued it directly learns what the API would have answered.
        code, reason = _refusal(error)
        publish(store.record_failed(message_id, code, reason, now))
        return SendOutcome.REFUSED
    request = draft.request
    # Decided before the claim, so that the record carries the category its delivery opens
    # from the first attempt on; acted on after it, so that a message already sent is never
    # failed by a rule that changed since.
    decision: SendDecision | PolicyViolationError
    try:
        decision = decide(request, accounts=accounts, state=state, templates=templates, now=now)
    except PolicyViolationError as violation:
        decision = violation
    except Exception as error:
        # Counted all the same: a message failing here every time is given up on in the end.
        raise UnexpectedSendError(store.count_attempt(draft, now)) from error
    if isinstance(decision, SendDecision):
        draft = replace(
            draft,
            category=decision.allowed.category,
            template_sid=decision.template.sid if decision.template else None,
        )
    previous = store.claim_attempt(draft, now)
    attempt = (previous.attempts if previous else 0) + 1
    try:
        if previous is not None and previous.done:
            publish(previous)  # events a crash kept from the bus
            return SendOutcome.ALREADY_DONE
        if previous is not None and previous.attempt_started_at is not None:
            in_flight = now - previous.attempt_started_at
            if in_flight < ATTEMPT_LEASE:
                # Another delivery of this message is being handled right now (SQS delivers
                # at least once): reconciling now could miss its send. Look again later.
                lease = int(ATTEMPT_LEASE.total_seconds())
                raise RetryLaterError("an attempt is in progress", lease)
        if isinstance(decision, PolicyViolationError):
            publish(store.record_failed(message_id, decision.code, decision.message, now))
            return SendOutcome.REFUSED
        outcome, failed = _deliver(
            request,
            decision,
            previous=previous,
            message_id=message_id,
            attempt=attempt,
            max_attempts=max_attempts,
            store=store,
            twilio=twilio,
            status_callback_url=status_callback_url,
            now=now,
        )
        publish(failed)
    except RetryLaterError:
        raise
    except Exception as error:
        raise UnexpectedSendError(attempt) from error
    return outcome


def queued_message(
    body: str, *, message_id: str, accounts: TwilioAccounts, now: datetime
) -> OutboundRecord:
    """A queued message as its record begins; raises ValidationError, PolicyViolationError or
    ApiError for one the gateway cannot send (not a request, or no sender of its own)."""
    request = SendMessageRequest.model_validate_json(body)
    sender, account = resolve_sender(request, accounts)
    return OutboundRecord(
        message_id=message_id,
        account_sid=account.account_sid,
        sender=sender,
        contact=request.to,
        request=request,
        created_at=now,
    )


def _deliver(
    request: SendMessageRequest,
    decision: SendDecision,
    *,
    previous: OutboundRecord | None,
    message_id: str,
    attempt: int,
    max_attempts: int,
    store: WorkerStore,
    twilio: TwilioSender,
    status_callback_url: str,
    now: datetime,
) -> tuple[SendOutcome, OutboundRecord | None]:
    """Reconciles an earlier attempt, or sends; the outcome and, when it failed, the record."""

    def sent(twilio_sid: str) -> None:
        store.record_sent(
            message_id,
            twilio_sid,
            category=decision.allowed.category,
            template_sid=decision.template.sid if decision.template else None,
            now=now,
        )

    twilio_request = _twilio_request(request, decision, status_callback_url)
    try:
        # A failed listing is a failure like any other: never send blindly after a crash.
        if previous is not None and (
            reached := _reached_twilio(previous, twilio_request, decision.account, twilio, store)
        ):
            sent(reached.sid)
            return SendOutcome.RECONCILED, None
        message = twilio.send(decision.account, twilio_request)
    except TwilioCallError as error:
        code = str(error.code or error.status or "no_answer")
        if not error.retryable:
            return SendOutcome.FAILED, store.record_failed(message_id, code, error.message, now)
        if attempt >= max_attempts:
            reason = f"Twilio failed {attempt} times; last: {code} {error.message}"
            return SendOutcome.EXHAUSTED, store.record_failed(
                message_id, "retries_exhausted", reason, now
            )
        if not error.maybe_sent:
            # Twilio answered that it did not take it: the next try needs no reconciliation.
            store.release_attempt(message_id)
        raise RetryLaterError(f"Twilio {code}", retry_delay_seconds(attempt)) from None
    sent(message.sid)
    return SendOutcome.SENT, None


def _refusal(error: ValidationError | PolicyViolationError | ApiError) -> tuple[str, str]:
    if isinstance(error, ValidationError):
        return "invalid_request", describe(error)
    return str(error.code), error.message


def _reached_twilio(
    previous: OutboundRecord,
    request: SendRequest,
    account: TwilioAccount,
    twilio: TwilioSender,
    store: WorkerStore,
) -> SentMessage | None:
    """The message an earlier attempt may have created at Twilio before the worker died.

    One contact's messages are sent one at a time (a FIFO group): the contact's earlier
    messages were recorded before this one was taken, so a listed message that can be this
    attempt's and that no other record claims is this attempt's.
    """
    if previous.attempt_started_at is None:
        return None
    since = previous.attempt_started_at - RECONCILE_SLACK
    listed = twilio.messages_to(account, previous.sender, previous.contact, since=since)
    for candidate in attempt_candidates(listed, request, since):
        if store.message_id_of(candidate.sid) in (None, previous.message_id):
            return candidate
    return None


def attempt_candidates(
    listed: Sequence[ListedMessage], request: SendRequest, since: datetime
) -> list[ListedMessage]:
    """The listed messages (newest first, as Twilio lists them) that can be the attempt that
    sent ``request``, oldest first: created since the attempt began (less the slack), whether
    Twilio sent them yet or not, with the attempt's text. A template's text is Twilio's
    rendering of it, and the list does not carry the Content SID: only the time tells."""

    def words(text: str | None) -> list[str]:
        return (text or "").split()

    return [
        message
        for message in reversed(listed)
        if message.date_created >= since
        and (request.content_sid is not None or words(message.body) == words(request.body))
    ]


def _twilio_request(
    request: SendMessageRequest, decision: SendDecision, status_callback_url: str
) -> SendRequest:
    if decision.template is not None:
        return SendRequest(
            from_=decision.sender,
            to=request.to,
            content_sid=decision.template.sid,
            content_variables=dict(request.variables),
            status_callback=status_callback_url,
        )
    return SendRequest(
        from_=decision.sender,
        to=request.to,
        body=request.body,
        media_urls=request.media_urls,
        status_callback=status_callback_url,
    )


def give_up_if_exhausted(
    failure: UnexpectedSendError,
    message_id: str,
    *,
    max_attempts: int,
    store: WorkerStore,
    conversations: ConversationStore,
    events: EventPublisher,
    now: datetime,
) -> bool:
    """After an unexpected failure: True when that was the message's last attempt, which
    then ends failed (and the bus is told), so that its delivery can be consumed and the
    contact's later messages go out; False when SQS is to deliver it again."""
    if failure.attempts < max_attempts:
        return False
    record = store.record_failed(
        message_id, "retries_exhausted", "the send worker failed on every attempt", now
    )
    if record is not None:
        publish_status_changes(record, store=store, conversations=conversations, events=events)
    return True


def retry_delay_seconds(attempt: int) -> int:
    """Exponential backoff through the queue: 30 s, 60 s, 120 s, ... (SQS caps at 15 min)."""
    return int(30 * 2 ** max(attempt - 1, 0))
