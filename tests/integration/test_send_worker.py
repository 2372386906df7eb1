"""The send worker on moto: SQS FIFO batches handed to ``send_worker.app.handler`` as Lambda's
event source would, Twilio's official client talking to a recording fake.

The conftest's ``SendQueueDriver.make_visible`` receives before it changes visibility, and a
receive never returns an in-flight message, so it cannot end a visibility timeout (a retry's
delay, or a crashed worker's 180 s). The driver here remembers the receipt handles it handed
out and ends their visibility with them: "time passes" and SQS delivers the message again.
"""

import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, override

import boto3
import pytest
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, ReadTimeout
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response

from inbound_webhook import app as inbound_webhook
from send_worker import app as worker
from tests.conftest import TEST_ACCOUNT_SID, TEST_SENDER
from tests.fake_twilio import (
    API,
    Answer,
    CreatedThen,
    FakeTwilio,
    SentRequest,
    error_answer,
    message_sid,
    messages_path,
    page_json,
)
from tests.integration.conftest import (
    TEMPLATE_SID,
    CapturedEvents,
    LambdaContext,
    SendQueueDriver,
    emitted_dimensioned_metrics,
    inbound_form,
    post_message,
    seed_template,
    webhook_event,
)
from whatsapp_gateway.adapters.twilio_rest import TwilioRest
from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.models.messages import MessageView, SendMessageRequest
from whatsapp_gateway.observability import logger
from whatsapp_gateway.outbound import OutboundRecord
from whatsapp_gateway.runtime import Runtime

CONTACT = "+15005550006"
CONTACT_ADDRESS = f"whatsapp:{CONTACT}"
MESSAGES_URL = API + messages_path()
STATUS_URL = "https://gateway.example.test/webhooks/twilio/status"
A_DAY_AND_A_SECOND = 24 * 3600 + 1


# --------------------------------------------------------------------------------- helpers


def open_window(contact: str = CONTACT, inbound_sid: str = "SM" + "0" * 31 + "1") -> None:
    """The contact writes to the business: its customer service window opens for 24 h."""
    form = inbound_form(
        From=f"whatsapp:{contact}",
        WaId=contact.removeprefix("+"),
        MessageSid=inbound_sid,
        SmsSid=inbound_sid,
        SmsMessageSid=inbound_sid,
    )
    assert inbound_webhook.handler(webhook_event(form), LambdaContext())["statusCode"] == 200


def accept(body: dict[str, Any]) -> str:
    """POST /v1/messages; the id of the accepted message."""
    status, answer = post_message(body)
    assert status == 202, answer
    return str(answer["id"])


def accept_text(text: str = "Your order shipped", to: str = CONTACT) -> str:
    return accept({"to": to, "body": text})


def posts(fake: FakeTwilio) -> list[SentRequest]:
    """Message creates: each one is a WhatsApp message the contact may receive."""
    return [r for r in fake.requests if r.method == "POST" and r.url == MESSAGES_URL]


def lists(fake: FakeTwilio) -> list[SentRequest]:
    """Reads of the Messages list: the worker reconciling an attempt in an unknown state."""
    return [r for r in fake.requests if r.method == "GET" and r.url == MESSAGES_URL]


def form_of(request: SentRequest) -> dict[str, str]:
    return {name: values[0] for name, values in request.form().items()}


def stored(gateway: Runtime, message_id: str) -> MessageView:
    view = gateway.messages.message_view(message_id)
    assert view is not None, f"no message {message_id}"
    return view


def failures(answer: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]


def status_events(captured: CapturedEvents) -> list[dict[str, Any]]:
    return [
        event["detail"]
        for event in captured.drain()
        if event["detail-type"] == "message.status_changed"
    ]


def empty_page() -> Answer:
    return Answer(200, page_json([], page=0, next_page_uri=None))


def created_sid(fake: FakeTwilio) -> str:
    """The SID Twilio gave the last message it created."""
    [*_, answer] = [a for a in fake.answers if a.status == 201]
    assert isinstance(answer.body, dict)
    return str(answer.body["sid"])


def killing_once[**P, R](step: Callable[P, R], *, after: bool) -> Callable[P, R]:
    """``step`` with the worker dying the first time: before the step runs, or right after."""
    killed = False

    def dying(*args: P.args, **kwargs: P.kwargs) -> R:
        nonlocal killed
        if killed:
            return step(*args, **kwargs)
        killed = True
        if after:
            step(*args, **kwargs)
        raise RuntimeError("worker killed")

    return dying


# ------------------------------------------------------------------------- what is sent


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param({"body": "Your order shipped"}, {"Body": "Your order shipped"}, id="body"),
        pytest.param(
            {"media_urls": ["https://media.example.test/label.pdf"]},
            {"MediaUrl": "https://media.example.test/label.pdf"},
            id="media",
        ),
        pytest.param(
            {"body": "Your label", "media_urls": ["https://media.example.test/label.pdf"]},
            {"Body": "Your label", "MediaUrl": "https://media.example.test/label.pdf"},
            id="body-and-media",
        ),
    ],
)
def test_a_free_form_message_inside_the_window_is_sent_once_and_stored_queued(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    content: dict[str, Any],
    expected: dict[str, str],
):
    # Given a contact who wrote to the business, and a reply accepted by the API
    open_window()
    message_id = accept({"to": CONTACT, **content})

    # When the worker runs on the queue
    answer = send_queue.run()

    # Then Twilio got exactly one create, from the sender to the contact, with the content
    assert failures(answer) == []
    [create] = fake_twilio.requests
    assert create.method == "POST"
    assert create.url == MESSAGES_URL
    assert form_of(create) == {
        "From": TEST_SENDER,
        "To": CONTACT_ADDRESS,
        **expected,
        "StatusCallback": f"{STATUS_URL}?message_id={message_id}",
    }
    # and the message is stored queued with Twilio's SID, as a service message
    message = stored(gateway, message_id)
    assert message.status == "queued"
    assert message.twilio_sid == message_sid(1)
    assert message.category == "service"
    assert [entry.status for entry in message.status_history] == ["accepted", "queued"]
    # and nothing is left in the queue
    assert send_queue.depth() == 0


@pytest.mark.parametrize(
    "template",
    [
        pytest.param({"content_sid": TEMPLATE_SID}, id="by-content-sid"),
        pytest.param({"name": "order_update", "language": "en"}, id="by-name"),
    ],
)
def test_a_template_is_sent_by_content_sid_with_its_variables_as_json(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    template: dict[str, str],
):
    # Given an approved utility template, and a send accepted with no window open
    seed_template()
    message_id = accept({"to": CONTACT, "template": template, "variables": {"1": "A-1042"}})

    # When the worker runs
    send_queue.run()

    # Then Twilio got the Content SID and the variables as a JSON string, and no body
    [create] = posts(fake_twilio)
    form = form_of(create)
    assert form["ContentSid"] == TEMPLATE_SID
    assert json.loads(form["ContentVariables"]) == {"1": "A-1042"}
    assert "Body" not in form
    assert "MediaUrl" not in form
    assert (form["From"], form["To"]) == (TEST_SENDER, CONTACT_ADDRESS)
    assert form["StatusCallback"] == f"{STATUS_URL}?message_id={message_id}"
    # and the message is queued with the template's category, taken from the synced template
    message = stored(gateway, message_id)
    assert message.status == "queued"
    assert message.twilio_sid == message_sid(1)
    assert message.category == "utility"
    assert message.template is not None
    assert message.template.sid == TEMPLATE_SID
    assert send_queue.depth() == 0


# ------------------------------------------------------------------ the policy at send time


def test_a_window_that_closed_while_the_message_waited_fails_it_without_calling_twilio(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
):
    # Given a reply accepted inside the window
    open_window()
    message_id = accept_text()
    captured_events.drain()
    # and the window closing while the message waits in the queue
    gateway.clock.advance(A_DAY_AND_A_SECOND)

    # When the worker runs
    answer = send_queue.run()

    # Then Twilio is never called and the message ends failed, not retried
    assert fake_twilio.requests == []
    assert failures(answer) == []
    assert send_queue.depth() == 0
    message = stored(gateway, message_id)
    assert message.status == "failed"
    assert message.error_code == "outside_service_window"
    assert message.twilio_sid is None
    # and the change is on the bus
    [changed] = status_events(captured_events)
    assert changed["message_id"] == message_id
    assert changed["status"] == "failed"
    assert changed["previous_status"] == "accepted"
    assert changed["error_code"] == "outside_service_window"
    assert changed["contact"] == CONTACT


def test_a_template_unapproved_while_the_message_waited_is_not_sent(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver
):
    # Given a template send accepted while the template was approved
    seed_template()
    message_id = accept(
        {"to": CONTACT, "template": {"content_sid": TEMPLATE_SID}, "variables": {"1": "A-1042"}}
    )
    # and Meta rejecting the template before the worker runs (a template sync)
    seed_template(status="rejected")

    # When the worker runs
    send_queue.run()

    # Then nothing reaches Twilio and the message fails with the policy's code
    assert fake_twilio.requests == []
    message = stored(gateway, message_id)
    assert (message.status, message.error_code) == ("failed", "template_not_approved")
    assert send_queue.depth() == 0


def test_a_contact_who_opted_out_while_a_template_waited_gets_nothing(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver
):
    # Given a marketing template accepted for a contact
    seed_template(category="MARKETING")
    message_id = accept(
        {"to": CONTACT, "template": {"content_sid": TEMPLATE_SID}, "variables": {"1": "A-1042"}}
    )
    # and the contact answering STOP before the worker runs
    stop = inbound_form(Body="STOP", MessageSid="SM" + "5" * 32, SmsSid="SM" + "5" * 32)
    assert inbound_webhook.handler(webhook_event(stop), LambdaContext())["statusCode"] == 200

    # When the worker runs
    send_queue.run()

    # Then nothing reaches Twilio and the message fails as opted out
    assert fake_twilio.requests == []
    message = stored(gateway, message_id)
    assert (message.status, message.error_code) == ("failed", "contact_opted_out")
    assert send_queue.depth() == 0


# ----------------------------------------------------------------------------- Twilio errors


@pytest.mark.parametrize(
    ("failure", "reconciles"),
    [
        pytest.param(error_answer(429, 20429, "Too Many Requests"), False, id="429-20429"),
        pytest.param(
            error_answer(400, 63018, "Rate limit exceeded for the WhatsApp sender"),
            False,
            id="63018",
        ),
        pytest.param(error_answer(500, 20500, "Internal Server Error"), True, id="500"),
        pytest.param(error_answer(503, 20503, "Service Unavailable"), True, id="503"),
        pytest.param(ReadTimeout("read timed out"), True, id="read-timeout"),
        pytest.param(ConnectTimeout("connect timed out"), False, id="connect-timeout"),
    ],
)
def test_a_passing_twilio_failure_is_retried_through_the_queue(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    failure: Answer | Exception,
    reconciles: bool,
):
    # Given an accepted reply, and Twilio failing its first create
    open_window()
    message_id = accept_text()
    fake_twilio.queue(failure)

    # When the worker runs
    answer = send_queue.run()

    # Then the record goes back to the queue, and the message is still waiting, not failed
    [record_id] = failures(answer)
    assert send_queue.depth() == 1
    assert stored(gateway, message_id).status == "accepted"
    assert len(posts(fake_twilio)) == 1

    # When the retry delay has passed and the worker runs again, Twilio taking it this time
    if reconciles:
        fake_twilio.queue(empty_page())  # Twilio lists nothing: the failed create made nothing
    send_queue.make_visible()
    retry = send_queue.run()

    # Then the same SQS message was retried and the message is sent
    assert failures(retry) == []
    assert send_queue.depth() == 0
    assert record_id not in failures(retry)
    message = stored(gateway, message_id)
    assert message.status == "queued"
    assert message.twilio_sid == created_sid(fake_twilio)
    assert len(posts(fake_twilio)) == 2
    # and only an answer that may hide a created message is reconciled before sending again
    listed = lists(fake_twilio)
    if reconciles:
        [listing] = listed
        assert fake_twilio.requests.index(listing) == 1  # between the two creates
        # the pair's messages, newest first, not filtered by DateSent: Twilio leaves a
        # message it has not sent yet without one
        assert listing.query() == {
            "To": [CONTACT_ADDRESS],
            "From": [TEST_SENDER],
            "PageSize": ["50"],
        }
    else:
        assert listed == []


def test_a_retried_send_waits_longer_each_time(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given Twilio throttling the account on three attempts in a row
    open_window()
    accept_text()
    throttled = error_answer(429, 20429, "Too Many Requests")
    fake_twilio.queue(throttled, throttled, throttled)
    delays: list[int] = []
    queue = gateway.queue
    retry_later = queue.retry_later

    def recording(receipt_handle: str, seconds: int) -> None:
        delays.append(seconds)
        retry_later(receipt_handle, seconds)

    monkeypatch.setattr(queue, "retry_later", recording)

    # When the worker runs on each delivery
    for _ in range(3):
        send_queue.run()
        send_queue.make_visible()

    # Then each retry is held back longer than the one before (exponential backoff)
    assert len(posts(fake_twilio)) == 3
    assert delays == [30, 60, 120]


@pytest.mark.parametrize(
    ("failure", "error_code", "error_message"),
    [
        pytest.param(
            error_answer(400, 63016, "Failed to send freeform message outside the window"),
            "63016",
            "Failed to send freeform message outside the window",
            id="63016-outside-window",
        ),
        pytest.param(
            error_answer(400, 21211, "Invalid 'To' Phone Number"),
            "21211",
            "Invalid 'To' Phone Number",
            id="21211-invalid-to",
        ),
        pytest.param(
            error_answer(400, 63024, "Invalid message recipient"),
            "63024",
            "Invalid message recipient",
            id="63024-invalid-recipient",
        ),
        pytest.param(
            error_answer(400, 63003, "Channel could not find To address"),
            "63003",
            "Channel could not find To address",
            id="63003-unknown-address",
        ),
        pytest.param(
            error_answer(400, 21656, "The ContentVariables Parameter is invalid"),
            "21656",
            "The ContentVariables Parameter is invalid",
            id="21656-bad-variables",
        ),
        pytest.param(
            error_answer(400, 63049, "Meta chose not to deliver this WhatsApp marketing message"),
            "63049",
            "Meta chose not to deliver this WhatsApp marketing message",
            id="63049-meta-declined",
        ),
        pytest.param(
            error_answer(400, 63032, "User's number is part of an experiment"),
            "63032",
            "User's number is part of an experiment",
            id="63032-whatsapp-limitation",
        ),
        pytest.param(
            error_answer(400, 21620, "Invalid media URL(s)"),
            "21620",
            "Invalid media URL(s)",
            id="other-400",
        ),
        pytest.param(
            error_answer(403, 20003, "Authenticate"),
            "20003",
            "Authenticate",
            id="403-authenticate",
        ),
        pytest.param(
            Answer(400, {"message": "Bad Request", "status": 400}),
            "400",
            "Bad Request",
            id="400-without-code",
        ),
    ],
)
def test_a_twilio_refusal_fails_the_message_with_twilios_code_and_is_not_retried(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    failure: Answer,
    error_code: str,
    error_message: str,
):
    # Given an accepted reply, and Twilio refusing it
    open_window()
    message_id = accept_text()
    captured_events.drain()
    fake_twilio.queue(failure)

    # When the worker runs
    answer = send_queue.run()

    # Then Twilio was called once, the record is done with, and the message failed
    assert len(fake_twilio.requests) == 1
    assert failures(answer) == []
    assert send_queue.depth() == 0
    message = stored(gateway, message_id)
    assert message.status == "failed"
    assert message.error_code == error_code
    assert message.error_message == error_message
    assert message.twilio_sid is None
    # and the failure is on the bus with Twilio's code
    [changed] = status_events(captured_events)
    assert (changed["status"], changed["error_code"]) == ("failed", error_code)
    assert changed["error_message"] == error_message

    # When SQS ran the queue again, nothing would be left to send
    send_queue.make_visible()
    assert send_queue.run() == {"batchItemFailures": []}
    assert len(fake_twilio.requests) == 1


def test_a_message_twilio_keeps_failing_ends_failed_when_its_retries_are_exhausted(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a worker that tries twice, and Twilio unavailable on both attempts
    monkeypatch.setenv("MAX_SEND_ATTEMPTS", "2")
    open_window()
    message_id = accept_text()
    captured_events.drain()
    unavailable = error_answer(503, 20503, "Service Unavailable")
    fake_twilio.queue(unavailable, empty_page(), unavailable)

    # When the worker runs on the first delivery
    first = send_queue.run()

    # Then it is retried
    assert len(failures(first)) == 1
    assert stored(gateway, message_id).status == "accepted"

    # When it runs on the last one
    send_queue.make_visible()
    last = send_queue.run()

    # Then the message ends failed with a clear reason, and the record is done with
    assert failures(last) == []
    assert send_queue.depth() == 0
    message = stored(gateway, message_id)
    assert message.status == "failed"
    assert message.error_code == "retries_exhausted"
    assert message.error_message is not None
    assert "503" in message.error_message
    # after two creates (and one reconciliation between them)
    assert len(posts(fake_twilio)) == 2
    assert len(lists(fake_twilio)) == 1
    [changed] = status_events(captured_events)
    assert (changed["status"], changed["error_code"]) == ("failed", "retries_exhausted")


def twilio_crashing_on_every_attempt(fake_twilio: FakeTwilio) -> None:
    """The SDK failing on its own (no HTTP answer to classify): an unexpected error."""
    fake_twilio.queue(
        TwilioException("the SDK failed"), empty_page(), TwilioException("the SDK failed")
    )


def test_an_unexpected_failure_on_every_attempt_ends_the_message_failed(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a worker that tries twice, and the send crashing on both attempts
    monkeypatch.setenv("MAX_SEND_ATTEMPTS", "2")
    open_window()
    message_id = accept_text()
    twilio_crashing_on_every_attempt(fake_twilio)

    # When the worker runs on both deliveries
    first = send_queue.run()
    send_queue.make_visible()
    last = send_queue.run()

    # Then the message is failed once the last attempt is spent, and its record consumed: it
    # does not hold the contact's later messages back, nor go to the dead-letter queue
    assert len(failures(first)) == 1
    assert failures(last) == []
    assert send_queue.depth() == 0
    message = stored(gateway, message_id)
    assert (message.status, message.error_code) == ("failed", "retries_exhausted")
    assert len(posts(fake_twilio)) == 2


def test_a_message_failed_after_unexpected_errors_is_announced_on_the_bus(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a worker that tries twice, and the send crashing on both attempts
    monkeypatch.setenv("MAX_SEND_ATTEMPTS", "2")
    open_window()
    message_id = accept_text()
    captured_events.drain()
    twilio_crashing_on_every_attempt(fake_twilio)

    # When the worker has spent its attempts
    send_queue.run()
    send_queue.make_visible()
    send_queue.run()

    # Then the end of the message is on the bus like any other failure
    assert stored(gateway, message_id).status == "failed"
    [changed] = status_events(captured_events)
    assert (changed["message_id"], changed["status"]) == (message_id, "failed")
    assert changed["error_code"] == "retries_exhausted"


# ------------------------------------------------------- a message that fails unexpectedly


def raising(error: Exception) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


def dead_letters() -> list[Any]:
    """What SQS moved to the send dead-letter queue (received, left there)."""
    sqs = boto3.client("sqs")
    answer = sqs.receive_message(
        QueueUrl=os.environ["SEND_DLQ_URL"],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
    )
    return list(answer.get("Messages", []))


def enqueue_poison_then_a_reply(
    gateway: Runtime, send_queue: SendQueueDriver, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """A template message whose handling raises (its template row unreadable), enqueued
    directly, and a reply to the same contact behind it in the contact's FIFO group."""
    seed_template()
    poison = send_queue.enqueue_directly(
        json.dumps(
            {"to": CONTACT, "template": {"content_sid": TEMPLATE_SID}, "variables": {"1": "A-1"}}
        )
    )
    behind = send_queue.enqueue_directly(json.dumps({"to": CONTACT, "body": "Your parcel"}))
    templates = gateway.templates
    monkeypatch.setattr(templates, "template_by_sid", raising(RuntimeError("unreadable row")))
    return poison, behind


def test_a_message_failing_unexpectedly_does_not_take_the_messages_behind_it_down(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a worker that tries three times, a contact inside the window, and a message that
    # fails on every attempt with a reply queued behind it
    monkeypatch.setenv("MAX_SEND_ATTEMPTS", "3")
    open_window()
    captured_events.drain()
    poison, behind = enqueue_poison_then_a_reply(gateway, send_queue, monkeypatch)

    # When SQS delivers the contact's messages until the queue is empty (each delivery of the
    # failing one hands the reply over too, and the reply's receive count climbs with it)
    runs = 0
    while send_queue.depth() and runs < 10:
        send_queue.run()
        send_queue.make_visible()
        runs += 1

    # Then the failing message ended failed at its third attempt (the delivery that gave it up
    # sent the reply behind it), and was announced
    assert runs == 3
    message = stored(gateway, poison)
    assert (message.status, message.error_code) == ("failed", "retries_exhausted")
    [changed] = status_events(captured_events)
    assert (changed["message_id"], changed["status"]) == (poison, "failed")
    assert changed["contact"] == CONTACT
    # and the reply behind it was sent, once, instead of being dead-lettered unattempted
    assert stored(gateway, behind).status == "queued"
    assert [form_of(r)["Body"] for r in posts(fake_twilio)] == ["Your parcel"]
    assert dead_letters() == []


def test_a_failure_the_bus_missed_at_the_last_attempt_is_announced_when_the_message_is_given_up(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a last attempt on which Twilio refuses the message and the bus fails once
    monkeypatch.setenv("MAX_SEND_ATTEMPTS", "1")
    open_window()
    message_id = accept_text()
    captured_events.drain()
    outside = "Failed to send freeform message outside the window"
    fake_twilio.queue(error_answer(400, 63016, outside))
    bus = gateway.events
    monkeypatch.setattr(bus, "publish", killing_once(bus.publish, after=False))

    # When the worker runs
    answer = send_queue.run()

    # Then the message is given up (its record consumed) with Twilio's failure announced
    assert failures(answer) == []
    message = stored(gateway, message_id)
    assert (message.status, message.error_code) == ("failed", "63016")
    [changed] = status_events(captured_events)
    assert (changed["message_id"], changed["error_code"]) == (message_id, "63016")


@pytest.fixture
def worker_logs() -> Iterator[io.StringIO]:
    """The functions' JSON log lines (Powertools Logger's stream, as Lambda prints it)."""
    logs = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    printed_to = handler.setStream(logs)
    yield logs
    handler.setStream(printed_to)


def test_an_unexpected_failure_is_logged_at_error_with_the_message_id_and_counted(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    monkeypatch: pytest.MonkeyPatch,
    worker_logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
):
    # Given a message whose handling fails unexpectedly
    open_window()
    poison, _ = enqueue_poison_then_a_reply(gateway, send_queue, monkeypatch)
    capsys.readouterr()

    # When the worker runs on it
    answer = send_queue.run()

    # Then its record (and the one behind it) go back to the queue
    assert len(failures(answer)) == 2
    # and one ERROR line names the message, its attempt and where it failed, and holds no
    # number, no body and not the error's own text
    lines = [json.loads(line) for line in worker_logs.getvalue().splitlines()]
    [error] = [line for line in lines if line["level"] == "ERROR"]
    assert error["message_id"] == poison
    assert error["attempts"] == 1
    assert error["error_type"] == "RuntimeError"
    assert "outbound.py" in error["error_at"][-3]
    text = json.dumps(error)
    for secret in ("5005550006", "A-1", "Your parcel", "unreadable row"):
        assert secret not in text
    # and it is counted, so that the alarm on the metric fires
    metrics = [name for name, _ in emitted_dimensioned_metrics(capsys.readouterr().out)]
    assert metrics.count("SendErrors") == 1


# ------------------------------------------------------------------------- batches of groups


class TwilioFailingFirstSendTo(FakeTwilio):
    """Answers 503 to the first create for one contact, whatever order the worker's threads
    call in; every other create is taken, and a list finds nothing."""

    def __init__(self, contact: str) -> None:
        super().__init__()
        self._contact = contact
        self._failed = False
        self._lock = threading.Lock()

    @override
    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        with self._lock:
            to = (data or {}).get("To")
            if method == "POST" and to == self._contact and not self._failed:
                self._failed = True
                self.queue(error_answer(503, 20503, "Service Unavailable"))
            elif method == "GET":
                self.queue(empty_page())
            return super().request(
                method, url, params, data, headers, auth, timeout, allow_redirects
            )


def test_a_failing_group_holds_back_only_its_own_later_messages(
    gateway: Runtime, send_queue: SendQueueDriver
):
    # Given three contacts with an open window, the last one about to hit a Twilio outage
    contacts = ["+15005550006", "+15005550007", "+15005550008"]
    for number, contact in enumerate(contacts, start=1):
        open_window(contact, inbound_sid=f"SM{number:032x}")
    failing = contacts[2]
    fake = TwilioFailingFirstSendTo(f"whatsapp:{failing}")
    gateway.__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=fake)
    # and one message for each contact, two for the failing one
    sent_ok = [accept_text(f"Hello {contact}", to=contact) for contact in contacts[:2]]
    first = accept_text("First of two", to=failing)
    second = accept_text("Second of two", to=failing)

    # When the worker runs on one batch holding all four
    event = send_queue.receive_event()
    assert len(event["Records"]) == 4
    answer = send_queue.deliver(event)

    # Then the other contacts' messages are sent
    for message_id in sent_ok:
        assert stored(gateway, message_id).status == "queued"
    # and the failing contact's second message was not sent before its first
    bodies_to_failing = [
        form_of(r)["Body"] for r in posts(fake) if form_of(r)["To"].endswith(failing)
    ]
    assert bodies_to_failing == ["First of two"]
    assert stored(gateway, first).status == "accepted"
    assert stored(gateway, second).status == "accepted"
    # and both of the failing group's records are reported failed, and no other
    ids = {
        record["messageAttributes"]["message_id"]["stringValue"]: record["messageId"]
        for record in event["Records"]
    }
    assert sorted(failures(answer)) == sorted([ids[first], ids[second]])

    # When they are delivered again
    send_queue.make_visible()
    retry = send_queue.run()

    # Then they go out in order, and the queue is empty
    assert failures(retry) == []
    bodies_to_failing = [
        form_of(r)["Body"] for r in posts(fake) if form_of(r)["To"].endswith(failing)
    ]
    assert bodies_to_failing == ["First of two", "First of two", "Second of two"]
    assert stored(gateway, first).status == "queued"
    assert stored(gateway, second).status == "queued"
    assert send_queue.depth() == 0
    # and every contact received each message once (the 503 created nothing)
    assert len(posts(fake)) == 5


class TwilioAnsweringOnlyConcurrentCreates(FakeTwilio):
    """Answers a create only once ``parties`` creates are in flight together: a worker sending
    one record at a time breaks the barrier, and its creates fail."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self._barrier = threading.Barrier(parties, timeout=5)

    @override
    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if method == "POST":
            self._barrier.wait()
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


def test_the_groups_of_a_batch_are_sent_concurrently(gateway: Runtime, send_queue: SendQueueDriver):
    # Given three contacts with a message each, and a Twilio answering only concurrent creates
    contacts = ["+15005550006", "+15005550007", "+15005550008"]
    for number, contact in enumerate(contacts, start=1):
        open_window(contact, inbound_sid=f"SM{number:032x}")
    fake = TwilioAnsweringOnlyConcurrentCreates(parties=len(contacts))
    gateway.__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=fake)
    message_ids = [accept_text(f"Hello {contact}", to=contact) for contact in contacts]

    # When the worker runs on the batch
    answer = send_queue.run()

    # Then the three creates were in flight together, and every message is sent
    assert failures(answer) == []
    assert len(posts(fake)) == 3
    assert {stored(gateway, message_id).status for message_id in message_ids} == {"queued"}


# ------------------------------------------------------------------- enqueued by other services


def test_a_valid_message_enqueued_directly_is_sent_under_its_sqs_message_id(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver
):
    # Given another AWS service enqueueing the API's JSON for a contact inside the window
    open_window()
    sqs_message_id = send_queue.enqueue_directly(
        json.dumps({"to": CONTACT, "body": "Your parcel is at the depot"})
    )

    # When the worker runs
    answer = send_queue.run()

    # Then it is sent once, its status callback naming the SQS message id
    assert failures(answer) == []
    [create] = posts(fake_twilio)
    assert form_of(create)["Body"] == "Your parcel is at the depot"
    assert form_of(create)["StatusCallback"] == f"{STATUS_URL}?message_id={sqs_message_id}"
    # and the message is recorded under that id
    message = stored(gateway, sqs_message_id)
    assert message.direction == "outbound"
    assert message.status == "queued"
    assert message.twilio_sid == message_sid(1)
    assert message.to == CONTACT_ADDRESS
    assert message.from_ == TEST_SENDER
    assert send_queue.depth() == 0


@pytest.mark.parametrize(
    ("body", "named"),
    [
        pytest.param("{not json", "body", id="bad-json"),
        pytest.param(
            json.dumps({"to": CONTACT, "body": "Hi", "colour": "green"}), "colour", id="unknown"
        ),
        pytest.param(json.dumps({"to": "not a number", "body": "Hi"}), "to", id="bad-to"),
        pytest.param(json.dumps({"to": CONTACT}), "body", id="no-content"),
    ],
)
def test_an_invalid_message_enqueued_directly_is_failed_and_never_sent_or_retried(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    body: str,
    named: str,
):
    # Given a window open (so only the message itself is wrong), and a bad message enqueued
    open_window()
    sqs_message_id = send_queue.enqueue_directly(body)

    # When the worker runs
    answer = send_queue.run()

    # Then it is recorded failed as the API would have refused it, naming what is wrong
    message = stored(gateway, sqs_message_id)
    assert message.status == "failed"
    assert message.error_code == "invalid_request"
    assert message.error_message is not None
    assert named in message.error_message
    # and it is never sent and never retried
    assert fake_twilio.requests == []
    assert failures(answer) == []
    assert send_queue.depth() == 0


@pytest.mark.parametrize(
    ("body", "error_code", "window_open"),
    [
        pytest.param(
            {"to": CONTACT, "body": "Hi"}, "outside_service_window", False, id="outside-window"
        ),
        pytest.param(
            {"to": CONTACT, "from": "+14155550100", "body": "Hi"},
            "unknown_sender",
            True,
            id="unknown-sender",
        ),
        pytest.param(
            {"to": CONTACT, "template": {"content_sid": "HX" + "f" * 32}, "variables": {"1": "x"}},
            "template_not_found",
            False,
            id="unknown-template",
        ),
    ],
)
def test_a_message_enqueued_directly_against_the_rules_is_failed_with_the_policy_code(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    body: dict[str, Any],
    error_code: str,
    window_open: bool,
):
    # Given a well-formed message WhatsApp would refuse, enqueued directly
    if window_open:
        open_window()
    sqs_message_id = send_queue.enqueue_directly(json.dumps(body))

    # When the worker runs
    answer = send_queue.run()

    # Then it is failed with the code the API would have answered, never sent, not retried
    message = stored(gateway, sqs_message_id)
    assert (message.status, message.error_code) == ("failed", error_code)
    assert fake_twilio.requests == []
    assert failures(answer) == []
    assert send_queue.depth() == 0
    if error_code == "outside_service_window":
        [changed] = status_events(captured_events)
        assert (changed["message_id"], changed["status"]) == (sqs_message_id, "failed")


# ------------------------------------------------------------- exactly once, whatever dies


def test_killed_after_the_attempt_is_recorded_before_twilio_is_called(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given an accepted reply, and a worker that dies right after recording its attempt
    open_window()
    message_id = accept_text()
    messages = gateway.messages
    monkeypatch.setattr(messages, "claim_attempt", killing_once(messages.claim_attempt, after=True))

    # When the worker runs, dies, and the message is delivered again
    crashed = send_queue.run()
    assert len(failures(crashed)) == 1
    assert fake_twilio.requests == []
    fake_twilio.queue(empty_page())  # Twilio never saw the attempt
    send_queue.make_visible()
    redelivered = send_queue.run()

    # Then the attempt in an unknown state is reconciled, found missing, and sent: once
    assert failures(redelivered) == []
    assert len(lists(fake_twilio)) == 1
    assert len(posts(fake_twilio)) == 1
    message = stored(gateway, message_id)
    assert message.status == "queued"
    assert message.twilio_sid == created_sid(fake_twilio)
    assert send_queue.depth() == 0


@pytest.mark.parametrize(
    "lost_answer",
    [
        pytest.param(RequestsConnectionError("connection reset by peer"), id="connection-lost"),
        pytest.param(ReadTimeout("read timed out"), id="read-timeout"),
        pytest.param(error_answer(502, 20502, "Bad Gateway"), id="502-yet-created"),
    ],
)
def test_killed_inside_the_twilio_call_after_twilio_accepted_the_message(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    lost_answer: Answer | Exception,
):
    # Given an accepted reply, and Twilio creating the message but its answer never arriving
    open_window()
    message_id = accept_text()
    fake_twilio.queue(CreatedThen(lost_answer))

    # When the worker runs, and the message is delivered again (Twilio still queues it)
    first = send_queue.run()
    assert len(failures(first)) == 1
    [created_at_twilio] = [message["sid"] for message in fake_twilio.messages]
    send_queue.make_visible()
    redelivered = send_queue.run()

    # Then the contact receives it once: the redelivery finds it at Twilio and sends nothing
    assert failures(redelivered) == []
    assert len(posts(fake_twilio)) == 1
    assert len(lists(fake_twilio)) == 1
    # and the message is recorded with the SID Twilio gave it
    message = stored(gateway, message_id)
    assert message.status == "queued"
    assert message.twilio_sid == created_at_twilio
    assert send_queue.depth() == 0


@pytest.mark.parametrize(
    "twilio_sent_it", [False, True], ids=["twilio-still-queues-it", "twilio-sent-it"]
)
def test_killed_after_twilio_accepted_before_the_sid_is_recorded(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    monkeypatch: pytest.MonkeyPatch,
    twilio_sent_it: bool,
):
    # Given an accepted reply, and a worker that dies before it records what Twilio answered
    open_window()
    message_id = accept_text()
    messages = gateway.messages
    monkeypatch.setattr(messages, "record_sent", killing_once(messages.record_sent, after=False))

    # When the worker runs and dies after Twilio took the message
    crashed = send_queue.run()
    assert len(failures(crashed)) == 1
    twilio_sid = created_sid(fake_twilio)
    assert stored(gateway, message_id).twilio_sid is None
    # and Twilio, slow or throttling, has not sent it yet (no date_sent), or has
    if twilio_sent_it:
        fake_twilio.mark_sent(twilio_sid)

    # When the message is delivered again, Twilio listing what it holds
    send_queue.make_visible()
    redelivered = send_queue.run()

    # Then it is not sent again, and its SID is recorded
    assert failures(redelivered) == []
    assert len(posts(fake_twilio)) == 1
    assert len(lists(fake_twilio)) == 1
    message = stored(gateway, message_id)
    assert message.status == "queued"
    assert message.twilio_sid == twilio_sid
    assert send_queue.depth() == 0


def test_killed_after_the_sid_is_recorded_before_the_sqs_message_is_deleted(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    lambda_context: LambdaContext,
):
    # Given a reply the worker sent and recorded, but whose SQS message was never deleted
    open_window()
    message_id = accept_text()
    event = send_queue.receive_event()
    assert failures(worker.handler(event, lambda_context)) == []
    twilio_sid = stored(gateway, message_id).twilio_sid
    assert twilio_sid is not None

    # When the visibility timeout ends and SQS delivers it again
    send_queue.make_visible()
    redelivered = send_queue.run()

    # Then nothing more is sent or listed: the message was done
    assert failures(redelivered) == []
    assert len(posts(fake_twilio)) == 1
    assert lists(fake_twilio) == []
    message = stored(gateway, message_id)
    assert (message.status, message.twilio_sid) == ("queued", twilio_sid)
    assert send_queue.depth() == 0


@pytest.mark.parametrize(
    ("twilio_answer", "final_status"),
    [
        pytest.param(None, "queued", id="sent"),
        pytest.param(
            error_answer(400, 63016, "Failed to send freeform message outside the window"),
            "failed",
            id="failed",
        ),
    ],
)
def test_a_redelivery_of_a_message_already_handled_sends_nothing(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context: LambdaContext,
    twilio_answer: Answer | None,
    final_status: str,
):
    # Given a message the worker handled to the end
    open_window()
    message_id = accept_text()
    if twilio_answer is not None:
        fake_twilio.queue(twilio_answer)
    event = send_queue.receive_event()
    send_queue.deliver(event)
    before = stored(gateway, message_id)
    assert before.status == final_status
    captured_events.drain()

    # When SQS hands the same record to a worker again (at-least-once delivery)
    answer = worker.handler(event, lambda_context)

    # Then nothing reaches Twilio, nothing changes, and nothing more is announced
    assert failures(answer) == []
    assert len(fake_twilio.requests) == 1
    assert stored(gateway, message_id) == before
    assert status_events(captured_events) == []


def test_reconciling_a_retry_does_not_mistake_the_contacts_previous_message_for_it(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver
):
    # Given two replies to one contact, the first sent, Twilio unavailable for the second
    open_window()
    first = accept_text("Your order shipped")
    send_queue.run()
    first_sid = stored(gateway, first).twilio_sid
    assert first_sid is not None
    second = accept_text("It arrives tomorrow")
    fake_twilio.queue(error_answer(503, 20503, "Service Unavailable"))
    send_queue.run()
    assert stored(gateway, second).status == "accepted"

    # When the second is retried, Twilio listing the contact's messages: only the first, sent
    # a moment before (the 503 created nothing)
    fake_twilio.mark_sent(first_sid)
    send_queue.make_visible()
    send_queue.run()

    # Then the second message is sent at last, under a SID of its own
    assert [form_of(r)["Body"] for r in posts(fake_twilio)] == [
        "Your order shipped",
        "It arrives tomorrow",
        "It arrives tomorrow",
    ]
    message = stored(gateway, second)
    assert message.status == "queued"
    assert message.twilio_sid not in (None, first_sid)


def test_a_reconciliation_twilio_cannot_answer_holds_the_message_back(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver
):
    # Given a reply whose create timed out, and Twilio's list then unavailable too
    open_window()
    message_id = accept_text()
    fake_twilio.queue(
        ReadTimeout("read timed out"), error_answer(503, 20503, "Service Unavailable")
    )

    # When the worker runs twice
    send_queue.run()
    send_queue.make_visible()
    second = send_queue.run()

    # Then the failed reconciliation holds the message back instead of sending it blindly
    assert len(failures(second)) == 1
    assert len(posts(fake_twilio)) == 1
    assert stored(gateway, message_id).status == "accepted"

    # When it runs once more, Twilio listing nothing
    fake_twilio.queue(empty_page())
    send_queue.make_visible()
    send_queue.run()

    # Then it is sent
    assert len(posts(fake_twilio)) == 2
    assert stored(gateway, message_id).status == "queued"
    assert send_queue.depth() == 0


def test_a_second_delivery_of_a_message_being_sent_is_deferred_not_sent_again(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver
):
    # Given a message whose first delivery is being handled right now (SQS delivers at least
    # once: the same record can reach two workers)
    open_window()
    message_id = accept_text()
    event = send_queue.receive_event()
    in_progress = OutboundRecord(
        message_id=message_id,
        account_sid=TEST_ACCOUNT_SID,
        sender=Address.parse(TEST_SENDER),
        contact=Address.from_id(CONTACT),
        request=SendMessageRequest.model_validate({"to": CONTACT, "body": "Your order shipped"}),
        created_at=gateway.clock.now(),
    )
    assert gateway.messages.claim_attempt(in_progress, gateway.clock.now()) is not None

    # When the second delivery reaches the worker within the attempt's lease
    answer = worker.handler(event, LambdaContext())

    # Then it sends nothing and asks to look again later: no reconciliation race
    assert failures(answer) == [event["Records"][0]["messageId"]]
    assert posts(fake_twilio) == []
    assert lists(fake_twilio) == []

    # And once the lease is over (the retry comes 30 s later), the message goes out once
    send_queue.make_visible()
    fake_twilio.queue(empty_page())
    assert failures(send_queue.run()) == []
    assert len(posts(fake_twilio)) == 1
    assert stored(gateway, message_id).status == "queued"
