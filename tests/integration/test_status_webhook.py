"""POST /webhooks/twilio/status on moto: Twilio's status callbacks of the messages the gateway
sent, signed as Twilio signs them. A status only moves forward, each real change is announced
once, and the first delivery (or read) of a message opens the conversation window of its
category for the pair, once."""

import io
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest

from api import app as api
from inbound_webhook import app as inbound
from status_webhook import app
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.fake_twilio import FakeTwilio
from tests.integration.conftest import (
    NOW,
    TEMPLATE_SID,
    CapturedEvents,
    LambdaContext,
    SendQueueDriver,
    api_event,
    emitted_dimensioned_metrics,
    inbound_form,
    post_message,
    seed_template,
    status_callback_event,
    webhook_event,
)
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.models.accounts import TwilioAccounts
from whatsapp_gateway.models.messages import MessageView
from whatsapp_gateway.observability import logger
from whatsapp_gateway.runtime import Runtime
from whatsapp_gateway.webhooks import EMPTY_TWIML

SENDER = Address.parse("whatsapp:+14155238886")
CONTACT = Address.parse("whatsapp:+15005550006")
UNKNOWN_SID = "SM" + "f" * 32
UNKNOWN_MESSAGE_ID = "0" * 32
MARKETING_SID = "HX" + "b" * 32
AUTHENTICATION_SID = "HX" + "c" * 32
SECOND_UTILITY_SID = "HX" + "d" * 32


# ---------------------------------------------------------------------- helpers


def open_service_window(context: LambdaContext) -> None:
    """The contact writes in: the customer service window opens."""
    response = inbound.handler(webhook_event(inbound_form()), context)
    assert response["statusCode"] == 200


def send(
    request: dict[str, Any], fake_twilio: FakeTwilio, send_queue: SendQueueDriver
) -> tuple[str, str]:
    """Posts a message and lets the worker send it; its gateway id and its Twilio SID."""
    status, accepted = post_message(request)
    assert status == 202, accepted
    send_queue.run()
    sid = fake_twilio.answers[-1].body
    assert isinstance(sid, dict)
    return str(accepted["id"]), str(sid["sid"])


def send_template(
    fake_twilio: FakeTwilio, send_queue: SendQueueDriver, content_sid: str = TEMPLATE_SID
) -> tuple[str, str]:
    request = {
        "to": "+15005550006",
        "template": {"content_sid": content_sid},
        "variables": {"1": "x"},
    }
    return send(request, fake_twilio, send_queue)


def send_free_form(fake_twilio: FakeTwilio, send_queue: SendQueueDriver) -> tuple[str, str]:
    return send({"to": "+15005550006", "body": "Your order ships today."}, fake_twilio, send_queue)


def status_event(
    sid: str,
    status: str,
    message_id: str | None,
    *,
    error_code: str | None = None,
    token: str | None = TEST_AUTH_TOKEN,
) -> dict[str, Any]:
    """Twilio's signed status callback, with the query string parameters API Gateway hands
    over decoded beside the raw query (the shared fixture leaves them out, and without them
    the handler never sees the message id)."""
    event = status_callback_event(
        sid, status, message_id=message_id, error_code=error_code, token=token
    )
    return with_query_parameters(event)


def with_query_parameters(event: dict[str, Any]) -> dict[str, Any]:
    if event["rawQueryString"]:
        event["queryStringParameters"] = dict(parse_qsl(event["rawQueryString"]))
    return event


def callback(
    context: LambdaContext,
    sid: str,
    status: str,
    message_id: str | None,
    *,
    error_code: str | None = None,
) -> dict[str, Any]:
    """Twilio posts one signed status callback; the handler's answer."""
    answer: dict[str, Any] = app.handler(
        status_event(sid, status, message_id, error_code=error_code), context
    )
    return answer


def view(gateway: Runtime, message_id: str) -> MessageView:
    message = gateway.messages.message_view(message_id)
    assert message is not None
    return message


def history(gateway: Runtime, message_id: str) -> list[str]:
    return [entry.status.value for entry in view(gateway, message_id).status_history]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["detail-type"] for event in events]


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in events if event["detail-type"] == kind]


def stored_messages() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName="MessagesTable", ConsistentRead=True)["Items"]


def stored_windows() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName="WindowsTable", ConsistentRead=True)["Items"]


def get_json(context: LambdaContext, path: str) -> tuple[int, dict[str, Any]]:
    response = api.handler(api_event("GET", path), context)
    return int(response["statusCode"]), json.loads(response["body"])


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The function's log lines, exactly as formatted for CloudWatch."""
    lines = io.StringIO()
    capture = logging.StreamHandler(lines)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    try:
        yield lines
    finally:
        logger.handlers.remove(capture)


@pytest.fixture
def template(gateway: Runtime) -> str:
    """An approved utility template, synced."""
    return seed_template(category="UTILITY")


@pytest.fixture
def sent_template(
    template: str,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
) -> tuple[str, str]:
    """A utility template Twilio took (queued), with nothing on the bus yet."""
    sent = send_template(fake_twilio, send_queue)
    captured_events.drain()
    return sent


@pytest.fixture
def sent_free_form(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context: LambdaContext,
) -> tuple[str, str]:
    """A free-form reply inside the customer service window, Twilio took it (queued)."""
    open_service_window(lambda_context)
    sent = send_free_form(fake_twilio, send_queue)
    captured_events.drain()
    return sent


# ---------------------------------------------------------------------- signature


def test_a_signed_callback_gets_an_empty_twiml_answer(
    gateway: Runtime, sent_template: tuple[str, str], lambda_context
):
    # Given a message Twilio took
    message_id, sid = sent_template

    # When Twilio reports it sent, signed with the account's auth token
    response = callback(lambda_context, sid, "sent", message_id)

    # Then Twilio gets 200 with an empty TwiML document, and the status moved
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/xml"
    assert response["body"] == EMPTY_TWIML
    assert view(gateway, message_id).status == "sent"


@pytest.mark.parametrize(
    ("token", "signature"),
    [
        pytest.param(None, None, id="missing"),
        pytest.param(None, "", id="empty"),
        pytest.param(None, "bm90IGEgc2lnbmF0dXJl", id="forged"),
        pytest.param("not-the-auth-token", None, id="other-token"),
    ],
)
def test_an_unsigned_or_forged_callback_is_refused_and_changes_nothing(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    token,
    signature,
):
    # Given a template Twilio took, and the records as they stand
    message_id, sid = sent_template
    messages_before = stored_messages()
    windows_before = stored_windows()

    # When someone posts a "delivered" callback without Twilio's valid signature
    event = status_event(sid, "delivered", message_id, token=token)
    if signature is not None:
        event["headers"]["x-twilio-signature"] = signature
    response = app.handler(event, lambda_context)

    # Then it is refused with a bare 403, and nothing moves: status, windows, bus
    assert response["statusCode"] == 403
    assert response["headers"]["Content-Type"] == "text/plain"
    assert view(gateway, message_id).status == "queued"
    assert stored_messages() == messages_before
    assert stored_windows() == windows_before
    assert gateway.store.conversation_openings(SENDER, CONTACT) == []
    assert captured_events.drain() == []


def test_a_callback_replayed_against_another_message_id_is_refused(
    gateway: Runtime, sent_template: tuple[str, str], lambda_context
):
    # The message id is in the signed URL: a genuine body cannot be pointed at another message.
    message_id, sid = sent_template
    event = status_event(sid, "delivered", message_id)
    event["rawQueryString"] = f"message_id={UNKNOWN_MESSAGE_ID}"
    event["queryStringParameters"] = {"message_id": UNKNOWN_MESSAGE_ID}

    assert app.handler(event, lambda_context)["statusCode"] == 403
    assert view(gateway, message_id).status == "queued"


# ---------------------------------------------------------------------- status moves forward


def test_sent_delivered_read_in_order_each_land_once_with_their_time(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a message Twilio took at 09:00
    message_id, sid = sent_template

    # When Twilio reports it sent, delivered and read, a few seconds apart
    for status in ("sent", "delivered", "read"):
        gateway.clock.advance(5)
        assert callback(lambda_context, sid, status, message_id)["statusCode"] == 200

    # Then the message is read, and its history holds each status once, with its time
    message = view(gateway, message_id)
    assert message.status == "read"
    assert [(e.status.value, e.at) for e in message.status_history] == [
        ("accepted", NOW),
        ("queued", NOW),
        ("sent", NOW + timedelta(seconds=5)),
        ("delivered", NOW + timedelta(seconds=10)),
        ("read", NOW + timedelta(seconds=15)),
    ]
    # and each change was announced once, each naming the status it left
    changes = of_kind(captured_events.drain(), "message.status_changed")
    assert [(c["status"], c["previous_status"]) for c in changes] == [
        ("sent", "queued"),
        ("delivered", "sent"),
        ("read", "delivered"),
    ]
    assert changes[0]["message_id"] == message_id
    assert changes[0]["twilio_sid"] == sid
    assert changes[0]["sender"] == "+14155238886"
    assert changes[0]["contact"] == "+15005550006"
    assert changes[1]["at"] == "2026-11-25T09:00:10Z"


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(("sent", "delivered", "read"))),
    ids="-".join,
)
def test_every_order_of_callbacks_ends_at_read_and_announces_only_real_changes(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    order,
):
    # Given a template Twilio took
    message_id, sid = sent_template
    rank = {"sent": 1, "delivered": 2, "read": 3}
    forward = [
        s for i, s in enumerate(order) if rank[s] > max((rank[p] for p in order[:i]), default=0)
    ]

    # When Twilio's callbacks arrive in this order
    for status in order:
        gateway.clock.advance(1)
        assert callback(lambda_context, sid, status, message_id)["statusCode"] == 200

    # Then the message is read, each status in its history once
    assert view(gateway, message_id).status == "read"
    assert sorted(history(gateway, message_id)) == sorted(
        ["accepted", "queued", "sent", "delivered", "read"]
    )
    # and only the callbacks that moved it forward were announced
    events = captured_events.drain()
    assert [c["status"] for c in of_kind(events, "message.status_changed")] == forward
    # and the first of delivered/read opened the utility conversation, once
    [opened] = of_kind(events, "conversation.opened")
    first_reach = next(s for s in order if s in {"delivered", "read"})
    assert opened["opened_at"] == (
        NOW + timedelta(seconds=order.index(first_reach) + 1)
    ).isoformat().replace("+00:00", "Z")
    assert len(gateway.store.conversation_openings(SENDER, CONTACT)) == 1


def test_a_duplicated_callback_changes_nothing_the_second_time(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a template Twilio took
    message_id, sid = sent_template

    # When Twilio posts every callback twice, the copy a little later
    for status in ("sent", "delivered", "read"):
        gateway.clock.advance(5)
        assert callback(lambda_context, sid, status, message_id)["statusCode"] == 200
        first = view(gateway, message_id)
        first_events = captured_events.drain()
        gateway.clock.advance(1)
        assert callback(lambda_context, sid, status, message_id)["statusCode"] == 200

        # Then the copy leaves the message as it was, time included, and announces nothing
        assert view(gateway, message_id) == first
        assert captured_events.drain() == []
        assert status in [c["status"] for c in of_kind(first_events, "message.status_changed")]

    assert history(gateway, message_id) == ["accepted", "queued", "sent", "delivered", "read"]
    assert len(gateway.store.conversation_openings(SENDER, CONTACT)) == 1


@pytest.mark.parametrize("late", ["failed", "undelivered"])
def test_a_failure_after_delivery_is_ignored(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    late,
):
    # Given a message delivered to the contact
    message_id, sid = sent_template
    callback(lambda_context, sid, "sent", message_id)
    callback(lambda_context, sid, "delivered", message_id)
    captured_events.drain()

    # When a failure arrives after it (out of order), twice
    gateway.clock.advance(5)
    assert callback(lambda_context, sid, late, message_id, error_code="30008")["statusCode"] == 200
    assert callback(lambda_context, sid, late, message_id, error_code="30008")["statusCode"] == 200

    # Then the message stays delivered, with no error, and nothing is announced
    message = view(gateway, message_id)
    assert message.status == "delivered"
    assert message.error_code is None
    assert captured_events.drain() == []
    # and the late status is in the history at most once
    assert history(gateway, message_id).count(late) <= 1


def test_undelivered_with_63016_ends_a_sent_message_with_twilios_code(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a message Twilio sent
    message_id, sid = sent_template
    callback(lambda_context, sid, "sent", message_id)
    captured_events.drain()

    # When Twilio reports it undelivered: outside the allowed window
    gateway.clock.advance(3)
    response = callback(lambda_context, sid, "undelivered", message_id, error_code="63016")

    # Then the message ends undelivered with Twilio's code on the record and in its history
    assert response["statusCode"] == 200
    message = view(gateway, message_id)
    assert message.status == "undelivered"
    assert message.error_code == "63016"
    last = message.status_history[-1]
    assert (last.status.value, last.at, last.error_code) == (
        "undelivered",
        NOW + timedelta(seconds=3),
        "63016",
    )
    # and the change is announced with the code
    [changed] = captured_events.drain()
    assert changed["detail-type"] == "message.status_changed"
    assert changed["detail"]["status"] == "undelivered"
    assert changed["detail"]["previous_status"] == "sent"
    assert changed["detail"]["error_code"] == "63016"
    # and no conversation opened: the template never reached the contact
    assert gateway.store.conversation_openings(SENDER, CONTACT) == []


def test_an_ended_message_does_not_come_back_to_life(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a message Twilio reported undelivered
    message_id, sid = sent_template
    callback(lambda_context, sid, "undelivered", message_id, error_code="63016")
    captured_events.drain()

    # When a stray "delivered" arrives afterwards
    assert callback(lambda_context, sid, "delivered", message_id)["statusCode"] == 200

    # Then the message stays undelivered: no event, no conversation window charged
    assert view(gateway, message_id).status == "undelivered"
    assert captured_events.drain() == []
    assert gateway.store.conversation_openings(SENDER, CONTACT) == []


@pytest.mark.parametrize("late", ["sent", "failed"])
def test_previous_status_is_the_status_the_message_left(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    late,
):
    # Given a delivered message, then an older or ignored status arriving late
    message_id, sid = sent_template
    for status in ("delivered", late):
        gateway.clock.advance(1)
        callback(lambda_context, sid, status, message_id)
    assert view(gateway, message_id).status == "delivered"
    captured_events.drain()

    # When the message is read
    gateway.clock.advance(1)
    callback(lambda_context, sid, "read", message_id)

    # Then the change names the status it really left: delivered
    [changed] = of_kind(captured_events.drain(), "message.status_changed")
    assert (changed["status"], changed["previous_status"]) == ("read", "delivered")


# ---------------------------------------------------------------------- unknown messages


@pytest.mark.parametrize(
    ("sid", "message_id"),
    [
        pytest.param("SM" + "1" * 32, UNKNOWN_MESSAGE_ID, id="unknown-message-id"),
        pytest.param(UNKNOWN_SID, None, id="unknown-sid-no-message-id"),
    ],
)
def test_a_callback_for_an_unknown_message_is_acknowledged_and_stores_nothing(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    log_lines,
    sid,
    message_id,
):
    # Given the gateway's records as they stand (one message of its own)
    messages_before = stored_messages()

    # When Twilio reports a status of a message the gateway does not know
    response = callback(lambda_context, sid, "delivered", message_id)

    # Then Twilio gets its 200 (it must not retry for ever), nothing is stored or announced
    assert response["statusCode"] == 200
    assert response["body"] == EMPTY_TWIML
    assert stored_messages() == messages_before
    assert stored_windows() == []
    assert captured_events.drain() == []
    # and a warning is logged
    warnings = [
        json.loads(line) for line in log_lines.getvalue().splitlines() if '"WARNING"' in line
    ]
    [warning] = [w for w in warnings if w["message"] == "status callback for an unknown message"]
    assert warning.get("id") == message_id


def test_a_callback_naming_an_inbound_message_changes_nothing(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    # Given a message the contact sent (its id is its Twilio SID)
    open_service_window(lambda_context)
    inbound_sid = inbound_form()["MessageSid"]
    messages_before = stored_messages()
    captured_events.drain()

    # When a status callback names it
    response = callback(lambda_context, inbound_sid, "delivered", inbound_sid)

    # Then it is acknowledged and the inbound message is untouched
    assert response["statusCode"] == 200
    assert stored_messages() == messages_before
    assert captured_events.drain() == []


def test_a_callback_with_only_the_sid_finds_its_message_by_sid(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a message Twilio took, and a callback URL without the gateway's message id
    message_id, sid = sent_template

    # When Twilio reports it delivered
    response = callback(lambda_context, sid, "delivered", None)

    # Then the message is found through its Twilio SID and moves
    assert response["statusCode"] == 200
    assert view(gateway, message_id).status == "delivered"
    events = captured_events.drain()
    [changed] = of_kind(events, "message.status_changed")
    assert changed["message_id"] == message_id
    assert len(of_kind(events, "conversation.opened")) == 1


def test_a_callback_with_an_unknown_status_gets_a_400_and_changes_nothing(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    message_id, sid = sent_template

    response = callback(lambda_context, sid, "teleported", message_id)

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_request"
    assert view(gateway, message_id).status == "queued"
    assert captured_events.drain() == []


@pytest.mark.parametrize(
    "status", ["accepted", "scheduled", "canceled", "partially_delivered", "received"]
)
def test_a_status_twilio_reports_but_the_gateway_does_not_track_is_acknowledged_and_ignored(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    capsys: pytest.CaptureFixture[str],
    status,
):
    # Given a message Twilio took, and the records as they stand
    message_id, sid = sent_template
    messages_before = stored_messages()
    capsys.readouterr()

    # When Twilio reports a status of its own (a Messaging Service's "accepted", ...)
    response = callback(lambda_context, sid, status, message_id)

    # Then Twilio gets its 200 (a 4xx would only fill its debugger), nothing changes
    assert response["statusCode"] == 200
    assert response["body"] == EMPTY_TWIML
    assert stored_messages() == messages_before
    assert captured_events.drain() == []
    # and it is counted
    metrics = [name for name, _ in emitted_dimensioned_metrics(capsys.readouterr().out)]
    assert metrics == ["StatusCallbacksUntracked"]


# ---------------------------------------------------------------------- another message's callbacks

OTHER_ACCOUNT_SID = "AC" + "2" * 32
OTHER_AUTH_TOKEN = "other-account-token"
OTHER_SENDER = "whatsapp:+15005550001"


@pytest.fixture
def two_accounts(gateway: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ISV's two subaccounts: the test account (its sender +14155238886), and another."""
    accounts = TwilioAccounts.model_validate(
        {
            "accounts": [
                {
                    "account_sid": TEST_ACCOUNT_SID,
                    "auth_token": TEST_AUTH_TOKEN,
                    "senders": ["whatsapp:+14155238886"],
                },
                {
                    "account_sid": OTHER_ACCOUNT_SID,
                    "auth_token": OTHER_AUTH_TOKEN,
                    "senders": [OTHER_SENDER],
                },
            ],
            "default_sender": "whatsapp:+14155238886",
        }
    )
    monkeypatch.setattr(gateway, "accounts", lambda: accounts)


def forged_callback(
    context: LambdaContext,
    sid: str,
    status: str,
    message_id: str | None,
    *,
    account_sid: str = TEST_ACCOUNT_SID,
    token: str = TEST_AUTH_TOKEN,
    error_code: str | None = None,
) -> dict[str, Any]:
    """A status callback signed by ``account_sid`` with ``token``: Twilio's shape, whoever
    wrote it."""
    form = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": OTHER_SENDER if account_sid == OTHER_ACCOUNT_SID else "whatsapp:+14155238886",
        "MessageSid": sid,
        "MessageStatus": status,
        "To": "whatsapp:+15005550006",
    }
    if error_code is not None:
        form["ErrorCode"] = error_code
    query = f"message_id={message_id}" if message_id else ""
    event = webhook_event(form, path="/webhooks/twilio/status", query=query, token=token)
    answer: dict[str, Any] = app.handler(with_query_parameters(event), context)
    return answer


def mismatch_warnings(log_lines: io.StringIO) -> list[dict[str, Any]]:
    return [
        record
        for record in map(json.loads, log_lines.getvalue().splitlines())
        if record["level"] == "WARNING" and record.get("reason") == "not_its_message"
    ]


@pytest.mark.parametrize("by", ["message-id", "sid-only"])
def test_another_accounts_callback_is_ignored_and_changes_nothing(
    gateway: Runtime,
    two_accounts: None,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    log_lines,
    capsys: pytest.CaptureFixture[str],
    by,
):
    # Given a message of the test account, Twilio took it
    message_id, sid = sent_template
    messages_before = stored_messages()
    capsys.readouterr()

    # When the other subaccount signs, with its own token, a "failed" callback naming it
    response = forged_callback(
        lambda_context,
        sid,
        "failed",
        message_id if by == "message-id" else None,
        account_sid=OTHER_ACCOUNT_SID,
        token=OTHER_AUTH_TOKEN,
        error_code="63016",
    )

    # Then it is acknowledged (a retry would change nothing) and changes nothing
    assert response["statusCode"] == 200
    assert view(gateway, message_id).status == "queued"
    assert stored_messages() == messages_before
    assert captured_events.drain() == []
    # and it is logged as a warning, without a number, and counted
    [warning] = mismatch_warnings(log_lines)
    assert "+1" not in json.dumps(warning)
    metrics = [name for name, _ in emitted_dimensioned_metrics(capsys.readouterr().out)]
    assert metrics == ["StatusCallbacksMismatched"]


def test_a_callback_with_another_twilio_sid_than_the_stored_one_changes_nothing(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    log_lines,
):
    # Given a message Twilio took under its SID
    message_id, _sid = sent_template
    messages_before = stored_messages()

    # When a callback of the same account names the message with another SID
    response = callback(lambda_context, UNKNOWN_SID, "failed", message_id, error_code="63016")

    # Then nothing changes, and a warning says why
    assert response["statusCode"] == 200
    assert view(gateway, message_id).status == "queued"
    assert stored_messages() == messages_before
    assert captured_events.drain() == []
    assert len(mismatch_warnings(log_lines)) == 1


def test_a_callback_before_the_send_changes_nothing_and_the_message_still_goes_out(
    gateway: Runtime,
    template: str,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context,
    log_lines,
):
    # Given a message accepted and waiting in the queue: the worker has not tried it yet
    status, accepted = post_message(
        {"to": "+15005550006", "template": {"content_sid": TEMPLATE_SID}, "variables": {"1": "x"}}
    )
    assert status == 202
    message_id = str(accepted["id"])
    messages_before = stored_messages()
    captured_events.drain()

    # When a signed "failed" callback names it, before it was ever handed to Twilio
    response = callback(lambda_context, UNKNOWN_SID, "failed", message_id, error_code="63016")

    # Then it changes nothing: no Twilio message can be reporting on it yet
    assert response["statusCode"] == 200
    assert stored_messages() == messages_before
    assert captured_events.drain() == []
    assert len(mismatch_warnings(log_lines)) == 1
    # and the worker sends it as if nothing had come
    send_queue.run()
    assert len(fake_twilio.requests) == 1
    sid = fake_twilio.answers[-1].body["sid"]  # type: ignore[index]
    message = view(gateway, message_id)
    assert (message.status, message.twilio_sid) == ("queued", sid)


# ---------------------------------------------------------------------- conversation windows


@pytest.mark.parametrize("first", ["delivered", "read"])
def test_the_first_delivery_of_a_template_opens_its_categorys_conversation(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    first,
):
    # Given a utility template Twilio took
    message_id, sid = sent_template

    # When the contact gets it (delivered, or read when "read" arrives first), at 09:10
    gateway.clock.advance(600)
    callback(lambda_context, sid, first, message_id)

    # Then the utility conversation opens for the pair for 24 hours, recorded
    opened_at = NOW + timedelta(minutes=10)
    [opening] = gateway.store.conversation_openings(SENDER, CONTACT)
    assert opening.category is Category.UTILITY
    assert opening.opened_at == opened_at
    assert opening.expires_at == opened_at + timedelta(hours=24)
    assert opening.message_id == message_id
    # and announced after the status change
    events = captured_events.drain()
    assert kinds(events) == ["message.status_changed", "conversation.opened"]
    assert events[1]["detail"] == {
        "sender": "+14155238886",
        "contact": "+15005550006",
        "category": "utility",
        "opened_at": "2026-11-25T09:10:00Z",
        "expires_at": "2026-11-26T09:10:00Z",
        "message_id": message_id,
    }

    # When the rest of the callbacks arrive
    for status in ("delivered", "read"):
        callback(lambda_context, sid, status, message_id)

    # Then no second opening
    assert len(gateway.store.conversation_openings(SENDER, CONTACT)) == 1
    assert of_kind(captured_events.drain(), "conversation.opened") == []


def test_statuses_failures_and_openings_are_counted_by_what_the_dashboard_splits_them_by(
    gateway: Runtime,
    template: str,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    lambda_context,
    capsys: pytest.CaptureFixture[str],
):
    # Given two utility templates Twilio took
    delivered_id, delivered_sid = send_template(fake_twilio, send_queue)
    failed_id, failed_sid = send_template(fake_twilio, send_queue)
    capsys.readouterr()

    # When one is delivered, its callback duplicated, and the other is undelivered (63016)
    callback(lambda_context, delivered_sid, "delivered", delivered_id)
    callback(lambda_context, delivered_sid, "delivered", delivered_id)
    callback(lambda_context, failed_sid, "undelivered", failed_id, error_code="63016")

    # Then each real change is counted once, by status, code and category
    counted = [
        metric
        for metric in emitted_dimensioned_metrics(capsys.readouterr().out)
        if metric[0] in {"MessagesByStatus", "MessagesFailed", "ConversationsOpened"}
    ]
    assert counted == [
        ("MessagesByStatus", {"status": "delivered"}),
        ("ConversationsOpened", {"category": "utility"}),
        ("MessagesByStatus", {"status": "undelivered"}),
        ("MessagesFailed", {"error_code": "63016"}),
    ]


def test_a_template_that_was_only_sent_opens_no_conversation(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    message_id, sid = sent_template

    callback(lambda_context, sid, "sent", message_id)

    assert gateway.store.conversation_openings(SENDER, CONTACT) == []
    assert kinds(captured_events.drain()) == ["message.status_changed"]


def test_two_templates_of_one_category_open_one_conversation(
    gateway: Runtime,
    template: str,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given two utility templates sent to the contact
    seed_template(sid=SECOND_UTILITY_SID, name="payment_due", category="UTILITY")
    first_id, first_sid = send_template(fake_twilio, send_queue)
    second_id, second_sid = send_template(fake_twilio, send_queue, SECOND_UTILITY_SID)
    captured_events.drain()

    # When both are delivered, an hour apart
    callback(lambda_context, first_sid, "delivered", first_id)
    gateway.clock.advance(3600)
    callback(lambda_context, second_sid, "delivered", second_id)

    # Then one utility conversation, opened by the first, one opening, one announcement
    [opening] = gateway.store.conversation_openings(SENDER, CONTACT)
    assert (opening.category, opening.message_id, opening.opened_at) == (
        Category.UTILITY,
        first_id,
        NOW,
    )
    events = captured_events.drain()
    assert [e["message_id"] for e in of_kind(events, "conversation.opened")] == [first_id]
    assert len(of_kind(events, "message.status_changed")) == 2
    _, windows = get_json(lambda_context, "/v1/contacts/+15005550006/windows")
    assert [c["category"] for c in windows["conversations"]] == ["utility"]


def test_three_templates_of_three_categories_open_three_conversations(
    gateway: Runtime,
    template: str,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a utility, a marketing and an authentication template sent to the contact
    seed_template(sid=MARKETING_SID, name="winter_sale", category="MARKETING")
    seed_template(sid=AUTHENTICATION_SID, name="login_code", category="AUTHENTICATION")
    sent = [
        send_template(fake_twilio, send_queue, content_sid)
        for content_sid in (TEMPLATE_SID, MARKETING_SID, AUTHENTICATION_SID)
    ]
    captured_events.drain()

    # When all three are delivered
    for message_id, sid in sent:
        gateway.clock.advance(1)
        callback(lambda_context, sid, "delivered", message_id)

    # Then three conversations are open, three openings recorded, three announced
    status, windows = get_json(lambda_context, "/v1/contacts/+15005550006/windows")
    assert status == 200
    assert sorted(c["category"] for c in windows["conversations"]) == [
        "authentication",
        "marketing",
        "utility",
    ]
    openings = gateway.store.conversation_openings(SENDER, CONTACT)
    assert sorted(o.category.value for o in openings) == ["authentication", "marketing", "utility"]
    assert {o.message_id for o in openings} == {message_id for message_id, _ in sent}
    opened = of_kind(captured_events.drain(), "conversation.opened")
    assert sorted(o["category"] for o in opened) == ["authentication", "marketing", "utility"]


def test_a_free_form_reply_inside_the_service_window_opens_the_service_conversation(
    gateway: Runtime,
    sent_free_form: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a free-form reply sent while the contact's service window is open
    message_id, sid = sent_free_form

    # When it is delivered
    callback(lambda_context, sid, "delivered", message_id)

    # Then the service conversation opens for the pair, recorded and announced
    [opening] = gateway.store.conversation_openings(SENDER, CONTACT)
    assert (opening.category, opening.message_id) == (Category.SERVICE, message_id)
    [opened] = of_kind(captured_events.drain(), "conversation.opened")
    assert opened["category"] == "service"
    _, windows = get_json(lambda_context, "/v1/contacts/+15005550006/windows")
    assert [c["category"] for c in windows["conversations"]] == ["service"]
    assert view(gateway, message_id).category is Category.SERVICE


def test_after_24_hours_a_new_delivery_opens_a_new_conversation(
    gateway: Runtime,
    template: str,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context,
):
    # Given a utility conversation opened at 09:00 by a delivered template
    first_id, first_sid = send_template(fake_twilio, send_queue)
    callback(lambda_context, first_sid, "delivered", first_id)
    captured_events.drain()

    # When, 24 hours later, another utility template is sent and delivered
    gateway.clock.advance(timedelta(hours=24).total_seconds())
    second_id, second_sid = send_template(fake_twilio, send_queue)
    callback(lambda_context, second_sid, "delivered", second_id)

    # Then a second utility conversation opens (the first was not extended): two openings
    openings = gateway.store.conversation_openings(SENDER, CONTACT)
    assert [(o.message_id, o.opened_at) for o in openings] == [
        (first_id, NOW),
        (second_id, NOW + timedelta(hours=24)),
    ]
    [opened] = of_kind(captured_events.drain(), "conversation.opened")
    assert opened["message_id"] == second_id
    assert opened["expires_at"] == "2026-11-27T09:00:00Z"


# ---------------------------------------------------------------------- crash recovery


@pytest.fixture
def bus_failing_once(gateway: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bus refuses the first publish (the Lambda dies there), then works."""
    real_publish = gateway.events.publish
    calls = 0

    def publish_failing_once(events: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("EventBridge unreachable")
        real_publish(events)

    monkeypatch.setattr(gateway.events, "publish", publish_failing_once)


def test_twilios_retry_after_a_crash_publishes_everything_exactly_once(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    bus_failing_once,
):
    # Given a template Twilio took, and a bus that fails once
    message_id, sid = sent_template

    # When Twilio posts "delivered": the handler fails, so Twilio sees a 5xx
    with pytest.raises(ConnectionError):
        app.handler(status_event(sid, "delivered", message_id), lambda_context)
    assert captured_events.drain() == []

    # When Twilio retries the same callback a minute later, and again
    gateway.clock.advance(60)
    assert callback(lambda_context, sid, "delivered", message_id)["statusCode"] == 200
    assert callback(lambda_context, sid, "delivered", message_id)["statusCode"] == 200

    # Then the change and the opening are announced exactly once in all
    events = captured_events.drain()
    assert kinds(events) == ["message.status_changed", "conversation.opened"]
    assert events[0]["detail"]["status"] == "delivered"
    assert events[0]["detail"]["at"] == "2026-11-25T09:00:00Z"
    assert events[1]["detail"]["message_id"] == message_id
    # and the window opened once, at the time of the delivery
    [opening] = gateway.store.conversation_openings(SENDER, CONTACT)
    assert (opening.category, opening.opened_at) == (Category.UTILITY, NOW)
    assert view(gateway, message_id).status == "delivered"


def test_a_later_callback_arriving_before_the_retry_publishes_what_the_crash_kept(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    bus_failing_once,
):
    # Given "delivered" crashed on the bus (Twilio will retry it)
    message_id, sid = sent_template
    with pytest.raises(ConnectionError):
        app.handler(status_event(sid, "delivered", message_id), lambda_context)

    # When "read" arrives before Twilio's retry, then the retry
    gateway.clock.advance(5)
    assert callback(lambda_context, sid, "read", message_id)["statusCode"] == 200
    gateway.clock.advance(55)
    assert callback(lambda_context, sid, "delivered", message_id)["statusCode"] == 200

    # Then every change and the opening went out once, in order
    events = captured_events.drain()
    assert kinds(events) == [
        "message.status_changed",
        "conversation.opened",
        "message.status_changed",
    ]
    assert [e["detail"].get("status") for e in events] == ["delivered", None, "read"]
    assert len(gateway.store.conversation_openings(SENDER, CONTACT)) == 1
    assert view(gateway, message_id).status == "read"


def test_an_opening_kept_by_a_crash_survives_a_late_delivered_in_the_same_second(
    gateway: Runtime,
    sent_template: tuple[str, str],
    captured_events: CapturedEvents,
    lambda_context,
    bus_failing_once,
):
    # Given "read" arrived first and crashed on the bus after it opened the window
    message_id, sid = sent_template
    with pytest.raises(ConnectionError):
        app.handler(status_event(sid, "read", message_id), lambda_context)
    assert len(gateway.store.conversation_openings(SENDER, CONTACT)) == 1

    # When the older "delivered" arrives within the same second, then Twilio retries "read"
    assert callback(lambda_context, sid, "delivered", message_id)["statusCode"] == 200
    gateway.clock.advance(60)
    assert callback(lambda_context, sid, "read", message_id)["statusCode"] == 200

    # Then the opening (already recorded, and charged) is announced once
    events = captured_events.drain()
    assert [c["status"] for c in of_kind(events, "message.status_changed")] == ["read"]
    assert [o["message_id"] for o in of_kind(events, "conversation.opened")] == [message_id]
    assert len(gateway.store.conversation_openings(SENDER, CONTACT)) == 1


@pytest.mark.parametrize(
    "enqueued",
    [
        pytest.param("api", id="through-the-api"),
        pytest.param("directly", id="enqueued-directly"),
    ],
)
def test_a_delivery_reported_before_the_worker_recorded_the_send_opens_the_conversation(
    gateway: Runtime,
    template: str,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context,
    monkeypatch,
    enqueued,
):
    # Given a worker that dies after Twilio took a utility template, before recording it
    real_record_sent = gateway.messages.record_sent
    calls = 0

    def record_sent_dying_once(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the Lambda was killed")
        real_record_sent(*args, **kwargs)

    monkeypatch.setattr(gateway.messages, "record_sent", record_sent_dying_once)
    request = {
        "to": "+15005550006",
        "template": {"content_sid": TEMPLATE_SID},
        "variables": {"1": "x"},
    }
    if enqueued == "api":
        assert post_message(request)[0] == 202
    else:
        send_queue.enqueue_directly(json.dumps(request))
    assert send_queue.run()["batchItemFailures"]
    callback_url = fake_twilio.requests[-1].form()["StatusCallback"][0]
    message_id = callback_url.split("message_id=")[1]
    answer = fake_twilio.answers[-1].body
    assert isinstance(answer, dict)
    sid = str(answer["sid"])

    # When Twilio reports it delivered while the message waits for its redelivery
    gateway.clock.advance(10)
    assert callback(lambda_context, sid, "delivered", message_id)["statusCode"] == 200
    send_queue.make_visible()
    send_queue.run()

    # Then it was sent once, and its delivery opened the utility conversation, once
    assert len(fake_twilio.requests) == 1
    assert view(gateway, message_id).status == "delivered"
    [opening] = gateway.store.conversation_openings(SENDER, CONTACT)
    assert (opening.category, opening.message_id) == (Category.UTILITY, message_id)
    assert len(of_kind(captured_events.drain(), "conversation.opened")) == 1


# ---------------------------------------------------------------------- GET /v1/messages/{id}


def test_the_message_view_shows_the_callbacks(
    gateway: Runtime, sent_template: tuple[str, str], lambda_context
):
    # Given a template sent, then reported sent and undelivered with Twilio's code and message
    message_id, sid = sent_template
    gateway.clock.advance(2)
    callback(lambda_context, sid, "sent", message_id)
    gateway.clock.advance(2)
    form = {
        "AccountSid": TEST_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": "whatsapp:+14155238886",
        "MessageSid": sid,
        "MessageStatus": "undelivered",
        "To": "whatsapp:+15005550006",
        "ErrorCode": "63016",
        "ErrorMessage": "Failed to send freeform message because you are outside the window",
    }
    event = with_query_parameters(
        webhook_event(form, path="/webhooks/twilio/status", query=f"message_id={message_id}")
    )
    assert app.handler(event, lambda_context)["statusCode"] == 200

    # When the business asks for the message
    status, message = get_json(lambda_context, f"/v1/messages/{message_id}")

    # Then it shows where the message stands and how it got there
    assert status == 200
    assert message["id"] == message_id
    assert message["direction"] == "outbound"
    assert (message["from"], message["to"]) == ("whatsapp:+14155238886", "whatsapp:+15005550006")
    assert message["status"] == "undelivered"
    assert message["twilio_sid"] == sid
    assert message["error_code"] == "63016"
    assert message["error_message"].startswith("Failed to send freeform message")
    assert message["category"] == "utility"
    assert message["template"]["sid"] == TEMPLATE_SID
    assert [(e["status"], e["at"]) for e in message["status_history"]] == [
        ("accepted", "2026-11-25T09:00:00Z"),
        ("queued", "2026-11-25T09:00:00Z"),
        ("sent", "2026-11-25T09:00:02Z"),
        ("undelivered", "2026-11-25T09:00:04Z"),
    ]
    assert message["status_history"][-1]["error_code"] == "63016"
    assert message["status_history"][-1]["error_message"] == form["ErrorMessage"]
    assert message["status_history"][2]["error_code"] is None


def test_an_unknown_message_is_a_404(gateway: Runtime, lambda_context):
    status, body = get_json(lambda_context, f"/v1/messages/{UNKNOWN_MESSAGE_ID}")

    assert status == 404
    assert body["error"]["code"] == "message_not_found"
