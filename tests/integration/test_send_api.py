"""POST /v1/messages and GET /v1/messages/{id} through the API function, on moto."""

import base64
import json
import logging
import os
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from api import app as api
from inbound_webhook import app as inbound
from tests.conftest import TEST_AUTH_TOKEN
from tests.fake_twilio import FakeTwilio
from tests.integration.conftest import (
    TEMPLATE_SID,
    LambdaContext,
    SendQueueDriver,
    api_event,
    inbound_form,
    post_message,
    seed_template,
    webhook_event,
)
from whatsapp_gateway.models.messages import SendMessageRequest
from whatsapp_gateway.runtime import Runtime

SENDER = "whatsapp:+14155238886"
CONTACT = "whatsapp:+15005550006"
GROUP = "+14155238886/+15005550006"
INBOUND_SID = "SM0123456789abcdef0123456789abcdef"
OTHER_TEMPLATE_SID = "HX" + "b" * 32

FREE_FORM: dict[str, Any] = {"to": "+15005550006", "body": "Your order has shipped."}
BY_SID: dict[str, Any] = {
    "to": "+15005550006",
    "template": {"content_sid": TEMPLATE_SID},
    "variables": {"1": "12345"},
}
BY_NAME: dict[str, Any] = {
    "to": "+15005550006",
    "template": {"name": "order_update", "language": "en"},
    "variables": {"1": "12345"},
}
TEMPLATE_REFS = [pytest.param(BY_SID, id="by-content-sid"), pytest.param(BY_NAME, id="by-name")]


# ---------------------------------------------------------------------- helpers


def receive_inbound(lambda_context: Any, body: str = "Hello", sid: str = INBOUND_SID) -> None:
    """The contact writes to the sender: a signed inbound webhook, which opens the window."""
    form = inbound_form(Body=body, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    assert inbound.handler(webhook_event(form), lambda_context)["statusCode"] == 200


def get_message(message_id: str) -> tuple[int, dict[str, Any]]:
    response = api.handler(api_event("GET", f"/v1/messages/{message_id}"), LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def post_as(caller_arn: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    """POST /v1/messages signed with SigV4 by ``caller_arn`` (API Gateway's IAM authorizer)."""
    event = api_event("POST", "/v1/messages")
    event["headers"] |= {"content-type": "application/json", "idempotency-key": key}
    event["body"] = json.dumps(body)
    event["requestContext"]["authorizer"] = {
        "iam": {
            "accessKey": "AKIAIOSFODNN7EXAMPLE",
            "accountId": "123456789012",
            "callerId": "AIDAEXAMPLE",
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": caller_arn,
            "userId": "AIDAEXAMPLE",
        }
    }
    response = api.handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def outbound_messages() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName="MessagesTable")["Items"]
    return [item for item in items if item["direction"]["S"] == "outbound"]


def queued() -> list[dict[str, Any]]:
    """What waits in the FIFO send queue (received, then made visible again)."""
    sqs = boto3.client("sqs")
    url = os.environ["SEND_QUEUE_URL"]
    messages: list[Any] = []
    while answer := sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", []):
        messages.extend(answer)
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return messages


def assert_refused(status: int, answer: dict[str, Any], http_status: int, code: str) -> str:
    """The answer is the contract's error, and the refused send left no trace."""
    assert status == http_status, answer
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]
    assert outbound_messages() == []
    assert queued() == []
    return str(answer["error"]["message"])


# ---------------------------------------------------------------------- free-form


def test_a_free_form_reply_inside_the_window_is_accepted_stored_and_queued(
    gateway: Runtime, fake_twilio: FakeTwilio, lambda_context
):
    # Given the contact wrote a minute ago
    receive_inbound(lambda_context)
    gateway.clock.advance(60)
    request = {"to": CONTACT, "from": SENDER, "body": "Your order has shipped."}

    # When the business replies
    status, answer = post_message(request)

    # Then it is accepted with a new id
    assert status == 202
    message_id = answer["id"]
    assert message_id
    assert answer == {"id": message_id, "status": "accepted"}
    # and stored as accepted, a service message
    status, view = get_message(message_id)
    assert status == 200
    assert view["id"] == message_id
    assert view["direction"] == "outbound"
    assert view["to"] == CONTACT
    assert view["from"] == SENDER
    assert view["status"] == "accepted"
    assert view["status_history"] == [
        {
            "status": "accepted",
            "at": "2026-11-25T09:01:00Z",
            "error_code": None,
            "error_message": None,
        }
    ]
    assert view["category"] == "service"
    assert view["body"] == "Your order has shipped."
    assert view["media_urls"] == []
    assert view["template"] is None
    assert view["twilio_sid"] is None
    assert view["created_at"] == "2026-11-25T09:01:00Z"
    # and queued once in the pair's FIFO group, with the request as its body
    [message] = queued()
    assert message["Attributes"]["MessageGroupId"] == GROUP
    assert message["MessageAttributes"]["message_id"]["StringValue"] == message_id
    assert json.loads(message["Body"]) == request
    # and Twilio is left to the send worker
    assert fake_twilio.requests == []


def test_a_request_without_from_goes_out_from_the_default_sender(gateway: Runtime, lambda_context):
    # Given an open window, and a request naming the contact in E.164 with no sender
    receive_inbound(lambda_context)
    request = {
        "to": "+15005550006",
        "body": "Here is a photo of your parcel.",
        "media_urls": ["https://media.example.test/parcel.jpg"],
    }

    # When it is posted
    status, answer = post_message(request)

    # Then the default sender sends it, and the queue holds the same request
    assert status == 202
    _, view = get_message(answer["id"])
    assert view["from"] == SENDER
    assert view["media_urls"] == ["https://media.example.test/parcel.jpg"]
    assert view["body"] == "Here is a photo of your parcel."
    [message] = queued()
    assert message["Attributes"]["MessageGroupId"] == GROUP
    assert SendMessageRequest.model_validate_json(
        message["Body"]
    ) == SendMessageRequest.model_validate(request)


def test_the_queued_message_is_what_the_send_worker_sends(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver, lambda_context
):
    # Given a reply accepted by the API
    receive_inbound(lambda_context)
    _, answer = post_message(FREE_FORM)

    # When the worker takes it from the queue
    send_queue.run()

    # Then Twilio is asked once to send it, and the message is queued at Twilio
    [sent] = fake_twilio.requests
    assert sent.form()["To"] == [CONTACT]
    assert sent.form()["From"] == [SENDER]
    assert sent.form()["Body"] == ["Your order has shipped."]
    _, view = get_message(answer["id"])
    assert view["status"] == "queued"
    assert view["twilio_sid"] is not None


def test_a_free_form_message_to_a_contact_who_never_wrote_is_refused(gateway: Runtime):
    # Given no inbound message from the contact
    # When the business sends free-form text
    status, answer = post_message(FREE_FORM)

    # Then it is refused, and nothing is stored or queued
    message = assert_refused(status, answer, 422, "outside_service_window")
    assert "24 hours" in message


def test_a_refusal_is_an_answer_not_an_error_in_the_logs(
    gateway: Runtime, caplog: pytest.LogCaptureFixture
):
    # Given no inbound message from the contact
    # When the business sends free-form text, which the rules refuse
    with caplog.at_level(logging.WARNING):
        status, answer = post_message(FREE_FORM)

    # Then the caller gets the 422, and nothing is logged as an error (an alarm's worth)
    assert_refused(status, answer, 422, "outside_service_window")
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


@pytest.mark.parametrize(
    ("elapsed", "status", "code"),
    [
        pytest.param(timedelta(hours=24) - timedelta(seconds=1), 202, None, id="last-second"),
        pytest.param(timedelta(hours=24), 422, "outside_service_window", id="24h-later"),
        pytest.param(timedelta(days=3), 422, "outside_service_window", id="days-later"),
    ],
)
def test_the_window_closes_24_hours_after_the_last_inbound_message(
    gateway: Runtime, lambda_context, elapsed, status, code
):
    # Given the contact wrote, and time passed
    receive_inbound(lambda_context)
    gateway.clock.advance(elapsed.total_seconds())

    # When the business sends free-form text
    answer_status, answer = post_message(FREE_FORM)

    # Then it goes out only while the window is open
    assert answer_status == status, answer
    if code is None:
        assert len(queued()) == 1
    else:
        assert_refused(answer_status, answer, 422, code)


def test_a_later_inbound_message_extends_the_window(gateway: Runtime, lambda_context):
    # Given the contact wrote at 09:00 and again 20 hours later
    receive_inbound(lambda_context)
    gateway.clock.advance(timedelta(hours=20).total_seconds())
    receive_inbound(lambda_context, body="Any news?", sid="SM" + "e" * 32)

    # When the business replies 30 hours after the first message
    gateway.clock.advance(timedelta(hours=10).total_seconds())
    status, answer = post_message(FREE_FORM)

    # Then the window, 24 hours from the last message, is still open
    assert status == 202, answer


def test_a_contact_known_only_by_a_user_id_can_be_replied_to(gateway: Runtime, lambda_context):
    # Given a contact without a phone number (Meta's business-scoped user id) who wrote
    form = inbound_form(From="whatsapp:US.13491208655302741918", WaId=None)
    assert inbound.handler(webhook_event(form), lambda_context)["statusCode"] == 200

    # When the business replies to that id
    status, answer = post_message({"to": "US.13491208655302741918", "body": "Hi!"})

    # Then the reply is accepted and queued in that pair's group
    assert status == 202, answer
    _, view = get_message(answer["id"])
    assert view["to"] == "whatsapp:US.13491208655302741918"
    [message] = queued()
    assert message["Attributes"]["MessageGroupId"] == "+14155238886/US.13491208655302741918"


def test_a_message_the_queue_refused_is_not_left_accepted(
    gateway: Runtime, lambda_context, monkeypatch
):
    # Given an open window, and SQS failing once
    receive_inbound(lambda_context)
    enqueue = gateway.queue.enqueue
    calls = 0

    def failing_once(**kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("SQS unreachable")
        enqueue(**kwargs)

    monkeypatch.setattr(gateway.queue, "enqueue", failing_once)

    # When the API fails (Lambda answers 500) and the caller retries with the same key
    with pytest.raises(ConnectionError):
        post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})
    status, answer = post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})

    # Then one message was queued, and no other stays accepted without ever being sent
    assert status == 202
    [message] = queued()
    assert message["MessageAttributes"]["message_id"]["StringValue"] == answer["id"]
    accepted = [m["message_id"]["S"] for m in outbound_messages() if m["status"]["S"] == "accepted"]
    assert accepted == [answer["id"]]


# ---------------------------------------------------------------------- templates


@pytest.mark.parametrize("request_body", TEMPLATE_REFS)
@pytest.mark.parametrize(
    ("meta_category", "category"),
    [
        pytest.param("UTILITY", "utility", id="utility"),
        pytest.param("MARKETING", "marketing", id="marketing"),
        pytest.param("authentication", "authentication", id="authentication"),
        pytest.param("TRANSACTIONAL", "utility", id="legacy-transactional"),
    ],
)
def test_an_approved_template_with_every_value_is_accepted_outside_the_window(
    gateway: Runtime, request_body, meta_category, category
):
    # Given an approved template synced with Meta's category, and a contact who never wrote
    seed_template(category=meta_category)

    # When it is sent with a value for each placeholder
    status, answer = post_message(request_body)

    # Then it is accepted, with the synced template's category in lower case
    assert status == 202, answer
    _, view = get_message(answer["id"])
    assert view["status"] == "accepted"
    assert view["category"] == category
    assert view["template"]["sid"] == TEMPLATE_SID
    assert view["body"] is None
    [message] = queued()
    assert message["Attributes"]["MessageGroupId"] == GROUP
    assert message["MessageAttributes"]["message_id"]["StringValue"] == answer["id"]
    assert json.loads(message["Body"])["template"] == request_body["template"]
    assert json.loads(message["Body"])["variables"] == {"1": "12345"}


def test_a_template_sent_by_name_shows_its_name_and_language(gateway: Runtime):
    seed_template()

    _, answer = post_message(BY_NAME)

    _, view = get_message(answer["id"])
    assert view["template"] == {"sid": TEMPLATE_SID, "name": "order_update", "language": "en"}
    assert view["category"] == "utility"


@pytest.mark.parametrize("request_body", TEMPLATE_REFS)
def test_a_template_that_was_never_synced_is_not_found(gateway: Runtime, request_body):
    # Given another template, of another name, synced
    seed_template(sid=OTHER_TEMPLATE_SID, name="welcome")

    status, answer = post_message(request_body)

    assert_refused(status, answer, 422, "template_not_found")


@pytest.mark.parametrize("request_body", TEMPLATE_REFS)
def test_a_template_deleted_at_twilio_is_not_found(gateway: Runtime, request_body):
    seed_template(deleted=True)

    status, answer = post_message(request_body)

    assert_refused(status, answer, 422, "template_not_found")


def test_a_template_deleted_and_created_again_under_its_name_uses_the_live_one(
    gateway: Runtime,
):
    # Given the old template (deleted) and its replacement, same name and language
    seed_template(deleted=True)
    seed_template(sid=OTHER_TEMPLATE_SID, category="MARKETING")

    # When it is sent by name
    status, answer = post_message(BY_NAME)

    # Then the live template is the one sent
    assert status == 202, answer
    _, view = get_message(answer["id"])
    assert view["template"]["sid"] == OTHER_TEMPLATE_SID
    assert view["category"] == "marketing"


@pytest.mark.parametrize("request_body", TEMPLATE_REFS)
@pytest.mark.parametrize("approval", ["pending", "rejected", "paused", "received", "disabled"])
def test_a_template_not_approved_for_whatsapp_is_refused(gateway: Runtime, request_body, approval):
    seed_template(status=approval)

    status, answer = post_message(request_body)

    message = assert_refused(status, answer, 422, "template_not_approved")
    assert approval in message


def test_an_approved_template_without_a_category_is_refused(gateway: Runtime):
    # A sync defect: Meta always categorizes an approved template
    seed_template(category=None)

    status, answer = post_message(BY_SID)

    assert_refused(status, answer, 422, "template_not_approved")


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        pytest.param({}, ["1", "name"], id="none-given"),
        pytest.param({"1": "12345"}, ["name"], id="named-one-missing"),
        pytest.param({"name": "Ada", "2": "extra"}, ["1"], id="numbered-one-missing"),
    ],
)
def test_a_placeholder_without_a_value_is_refused_naming_it(gateway: Runtime, variables, missing):
    # Given a template using {{1}} and {{name}}
    seed_template(placeholders=("1", "name"))
    request = {"to": "+15005550006", "template": {"content_sid": TEMPLATE_SID}}
    if variables:
        request["variables"] = variables

    status, answer = post_message(request)

    message = assert_refused(status, answer, 422, "template_variables_missing")
    assert message.endswith(", ".join(missing))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("line one\nline two", id="newline"),
        pytest.param("col\tumn", id="tab"),
        pytest.param("five     spaces", id="five-spaces"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("x" * 1601, id="over-1600-chars"),
    ],
)
def test_a_value_twilio_would_refuse_is_refused(gateway: Runtime, value):
    seed_template()
    request = {**BY_SID, "variables": {"1": value}}

    status, answer = post_message(request)

    message = assert_refused(status, answer, 422, "template_variables_invalid")
    assert message.endswith(": 1")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("four    spaces", id="four-spaces"),
        pytest.param("x" * 1600, id="1600-chars"),
        pytest.param("Ünïcödé ✓", id="unicode"),
    ],
)
def test_values_at_the_limits_are_accepted(gateway: Runtime, value):
    seed_template()

    status, answer = post_message({**BY_SID, "variables": {"1": value}})

    assert status == 202, answer
    assert json.loads(queued()[0]["Body"])["variables"] == {"1": value}


@pytest.mark.parametrize("request_body", TEMPLATE_REFS)
def test_a_template_to_a_contact_who_opted_out_is_refused(
    gateway: Runtime, lambda_context, request_body
):
    # Given an approved template and a contact who wrote STOP
    seed_template()
    receive_inbound(lambda_context, body="STOP")

    status, answer = post_message(request_body)

    assert_refused(status, answer, 422, "contact_opted_out")


def test_a_contact_who_wrote_start_again_gets_templates_again(gateway: Runtime, lambda_context):
    seed_template()
    receive_inbound(lambda_context, body="STOP")
    gateway.clock.advance(60)
    receive_inbound(lambda_context, body="START", sid="SM" + "f" * 32)

    status, answer = post_message(BY_SID)

    assert status == 202, answer


@pytest.mark.parametrize(
    ("types", "window_open", "status", "code"),
    [
        pytest.param(("twilio/list-picker",), False, 422, "outside_service_window", id="closed"),
        pytest.param(("twilio/list-picker",), True, 202, None, id="open"),
        pytest.param(
            ("twilio/list-picker", "twilio/location"), False, 422, "outside_service_window",
            id="session-only-types-closed",
        ),
        pytest.param(
            ("twilio/list-picker", "twilio/text"), False, 202, None, id="with-a-text-fallback"
        ),
    ],
)  # fmt: skip
def test_a_session_only_template_needs_the_window(
    gateway: Runtime, lambda_context, types, window_open, status, code
):
    # Given an approved template whose content types WhatsApp delivers in a session only
    seed_template(types=types)
    if window_open:
        receive_inbound(lambda_context)

    answer_status, answer = post_message(BY_SID)

    if code is None:
        assert answer_status == status, answer
        assert len(queued()) == 1
    else:
        assert_refused(answer_status, answer, status, code)


# ---------------------------------------------------------------------- senders


@pytest.mark.parametrize(
    "sender", ["+15005550009", "whatsapp:+15005550009"], ids=["e164", "whatsapp-address"]
)
def test_a_sender_that_is_not_configured_is_refused(gateway: Runtime, lambda_context, sender):
    # Given an open window with the configured sender
    receive_inbound(lambda_context)

    status, answer = post_message({**FREE_FORM, "from": sender})

    message = assert_refused(status, answer, 422, "unknown_sender")
    assert "whatsapp:***0009" in message  # no error answer holds a full number


# ---------------------------------------------------------------------- malformed requests


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param('{"to": "+15005550006", "body": ', "JSON", id="malformed-json"),
        pytest.param("[]", "body", id="not-an-object"),
        pytest.param({"body": "Hi"}, "to", id="no-to"),
        pytest.param({"to": "12345", "body": "Hi"}, "to", id="to-not-e164"),
        pytest.param({"to": 15005550006, "body": "Hi"}, "to", id="to-an-int"),
        pytest.param({"to": "+15005550006", "from": "nobody", "body": "Hi"}, "from", id="bad-from"),
        pytest.param({**FREE_FORM, "cc": "+15005550007"}, "cc", id="unknown-field"),
        pytest.param({**BY_SID, "body": "Hi"}, "template", id="body-and-template"),
        pytest.param({"to": "+15005550006"}, "template", id="no-content"),
        pytest.param({**FREE_FORM, "variables": {"1": "x"}}, "variables", id="variables-alone"),
        pytest.param({**FREE_FORM, "body": ""}, "body", id="empty-body"),
        pytest.param({**FREE_FORM, "body": "x" * 1601}, "body", id="body-over-1600"),
        pytest.param(
            {"to": "+15005550006", "media_urls": ["http://media.example.test/a.jpg"]},
            "media_urls",
            id="media-over-http",
        ),
        pytest.param(
            {
                "to": "+15005550006",
                "media_urls": [
                    "https://media.example.test/a.jpg",
                    "https://media.example.test/b.jpg",
                ],
            },
            "media_urls",
            id="two-media",
        ),
        pytest.param(
            {"to": "+15005550006", "template": {"name": "order_update"}},
            "template",
            id="name-without-language",
        ),
        pytest.param(
            {"to": "+15005550006", "template": {"content_sid": "HX123"}},
            "template.content_sid",
            id="content-sid-too-short",
        ),
        pytest.param(
            {"to": "+15005550006", "template": {"content_sid": "HX" + "g" * 32}},
            "template.content_sid",
            id="content-sid-not-hex",
        ),
        pytest.param(
            {"to": "+15005550006", "template": {"content_sid": "MG" + "a" * 32}},
            "template.content_sid",
            id="content-sid-not-hx",
        ),
        pytest.param(
            {**BY_SID, "template": {"content_sid": TEMPLATE_SID, "name": "order_update"}},
            "template",
            id="content-sid-and-name",
        ),
        pytest.param({**BY_SID, "variables": {"1": 12345}}, "variables.1", id="value-an-int"),
        # DynamoDB refuses a key over 2,048 bytes: the name and language make the lookup's.
        pytest.param(
            {**BY_NAME, "template": {"name": "\U0001f600" * 257, "language": "en"}},
            "template.name",
            id="template-name-over-256-characters",
        ),
        pytest.param(
            {**BY_NAME, "template": {"name": "order_update", "language": "e" * 17}},
            "template.language",
            id="template-language-over-16-characters",
        ),
    ],
)
def test_a_malformed_request_gets_a_400_naming_the_field(
    gateway: Runtime, lambda_context, body, field
):
    # Given an open window and a synced template: only the request itself is wrong
    receive_inbound(lambda_context)
    seed_template()

    status, answer = post_message(body)

    message = assert_refused(status, answer, 400, "invalid_request")
    assert field in message


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("\u0661", id="arabic-indic-one"),
        pytest.param("first name", id="a-space"),
        pytest.param("1\n", id="a-trailing-newline"),
        pytest.param("", id="empty"),
        pytest.param("a" * 17, id="over-16-characters"),
    ],
)
def test_a_variable_name_twilio_would_not_take_is_refused(gateway: Runtime, name):
    # Twilio's variable names: ASCII letters, digits and underscores, 16 characters at most
    seed_template()

    status, answer = post_message({**BY_SID, "variables": {"1": "12345", name: ""}})

    message = assert_refused(status, answer, 400, "invalid_request")
    assert "variables" in message


def many_variables(count: int, value: str = "x") -> dict[str, str]:
    return {str(number): value for number in range(1, count + 1)}


@pytest.mark.parametrize(("count", "accepted"), [(100, True), (101, False)])
def test_a_template_takes_at_most_100_variables(gateway: Runtime, count, accepted):
    seed_template()

    status, answer = post_message({**BY_SID, "variables": many_variables(count)})

    if accepted:
        assert status == 202, answer
    else:
        message = assert_refused(status, answer, 400, "invalid_request")
        assert "variables" in message


# ---------------------------------------------------------------------- hostile bodies

MAX_BODY_BYTES = 64 * 1024


def padded_to(request: dict[str, Any], size: int) -> str:
    """The request's JSON followed by spaces (JSON allows them) up to ``size`` UTF-8 bytes."""
    text = json.dumps(request, ensure_ascii=False)
    return text + " " * (size - len(text.encode()))


@pytest.mark.parametrize(
    ("body", "http_status", "code", "said"),
    [
        pytest.param(
            '{"to": ' + "[" * 100_000 + "]" * 100_000 + "}",
            413,
            "payload_too_large",
            "64 KiB",
            id="nested-100000-deep",
        ),
        pytest.param(
            '{"to": ' + "[" * 30_000 + "]" * 30_000 + "}",
            400,
            "invalid_request",
            "nested",
            id="nested-30000-deep-within-the-size",
        ),
        pytest.param(
            '{"to": "+15005550006", "body": ' + "1" * 5000 + "}",
            400,
            "invalid_request",
            "JSON",
            id="an-integer-of-5000-digits",
        ),
        pytest.param(
            json.dumps({**BY_SID, "variables": many_variables(250, "x" * 1600)}),
            413,
            "payload_too_large",
            "64 KiB",
            id="400-kb-of-variables",
        ),
        pytest.param(
            padded_to(FREE_FORM, MAX_BODY_BYTES + 1), 413, "payload_too_large", "64 KiB",
            id="one-byte-over",
        ),
        pytest.param(
            # 65,536 characters, 65,537 bytes: the limit is in bytes
            padded_to({**FREE_FORM, "body": "\u00e9"}, MAX_BODY_BYTES + 1),
            413,
            "payload_too_large",
            "64 KiB",
            id="one-byte-over-in-characters-under",
        ),
    ],
)  # fmt: skip
def test_a_hostile_body_is_refused_before_it_is_parsed(
    gateway: Runtime, lambda_context, body, http_status, code, said
):
    # Given an open window and a synced template: only the body's shape is wrong
    receive_inbound(lambda_context)
    seed_template()

    status, answer = post_message(body)

    message = assert_refused(status, answer, http_status, code)
    assert said in message


def test_brackets_and_quotes_inside_strings_are_not_nesting(gateway: Runtime, lambda_context):
    receive_inbound(lambda_context)
    text = '[{"\\' * 300  # quotes and backslashes escaped in the JSON

    status, answer = post_message({**FREE_FORM, "body": text})

    assert status == 202, answer
    [message] = queued()
    assert json.loads(message["Body"])["body"] == text


def test_the_largest_request_accepted_fits_a_dynamodb_item_and_an_sqs_message(
    gateway: Runtime,
):
    # Given a template request of 64 KiB, most of it 4-byte characters (the worst case)
    seed_template()
    body = padded_to({**BY_SID, "variables": many_variables(40, "\U0001f600" * 400)}, 65_536)

    status, answer = post_message(body)

    # Then it is accepted whole, and fits what SQS (256 KiB) and DynamoDB (400 KB) take
    assert status == 202, answer
    [stored] = outbound_messages()
    assert len(json.dumps(stored, ensure_ascii=False).encode()) < 400_000
    [message] = queued()
    assert len(message["Body"].encode()) < 256 * 1024
    assert (
        SendMessageRequest.model_validate_json(message["Body"]).variables
        == json.loads(body)["variables"]
    )


def post_raw(body: str, content_type: str, *, base64_encoded: bool) -> tuple[int, dict[str, Any]]:
    event = api_event("POST", "/v1/messages")
    event["headers"]["content-type"] = content_type
    event["body"] = body
    event["isBase64Encoded"] = base64_encoded
    response = api.handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("content_type", "body", "base64_encoded", "http_status", "code"),
    [
        pytest.param(
            "text/plain", json.dumps(FREE_FORM), False, 415, "unsupported_content_type",
            id="text-plain",
        ),
        pytest.param(
            "multipart/form-data", "", False, 415, "unsupported_content_type",
            id="multipart-without-boundary",
        ),
        pytest.param(
            "multipart/form-data; boundary=x", base64.b64encode(b"--x--").decode(), True, 415,
            "unsupported_content_type", id="multipart",
        ),
        pytest.param(
            "application/x-www-form-urlencoded", "to=%2B15005550006&body=Hi", False, 415,
            "unsupported_content_type", id="form",
        ),
        pytest.param(
            "application/json", base64.b64encode(b'{"to": "\xff"}').decode(), True, 400,
            "invalid_request", id="not-utf-8",
        ),
    ],
)  # fmt: skip
def test_a_body_that_is_not_json_text_gets_the_contracts_error(
    gateway: Runtime, lambda_context, content_type, body, base64_encoded, http_status, code
):
    receive_inbound(lambda_context)

    status, answer = post_raw(body, content_type, base64_encoded=base64_encoded)

    assert_refused(status, answer, http_status, code)


# ---------------------------------------------------------------------- Idempotency-Key


@pytest.mark.parametrize("header", ["Idempotency-Key", "idempotency-key"])
def test_the_same_key_and_body_get_the_first_answer_and_one_send(
    gateway: Runtime, lambda_context, header
):
    # Given a reply accepted with an Idempotency-Key (API Gateway lower-cases header names)
    receive_inbound(lambda_context)
    first = post_message(FREE_FORM, {header: "order-12345-shipped"})

    # When the caller retries it, a moment later
    gateway.clock.advance(5)
    again = post_message(FREE_FORM, {header: "order-12345-shipped"})

    # Then the answer is the first one, and the message is stored and queued once
    assert first[0] == 202
    assert again == first
    [stored] = outbound_messages()
    assert stored["message_id"]["S"] == first[1]["id"]
    [message] = queued()
    assert message["MessageAttributes"]["message_id"]["StringValue"] == first[1]["id"]


def test_the_same_key_with_another_body_is_a_conflict(gateway: Runtime, lambda_context):
    # Given a reply accepted with a key
    receive_inbound(lambda_context)
    status, first = post_message(FREE_FORM, {"Idempotency-Key": "order-12345"})
    assert status == 202

    # When the same key comes with another body
    status, answer = post_message(
        {**FREE_FORM, "body": "Your order was cancelled."}, {"Idempotency-Key": "order-12345"}
    )

    # Then it is refused, and only the first message exists
    assert status == 409
    assert answer["error"]["code"] == "idempotency_key_reused"
    assert [m["message_id"]["S"] for m in outbound_messages()] == [first["id"]]
    assert len(queued()) == 1


def test_different_keys_send_two_messages(gateway: Runtime, lambda_context):
    receive_inbound(lambda_context)

    _, first = post_message(FREE_FORM, {"Idempotency-Key": "key-1"})
    _, second = post_message(FREE_FORM, {"Idempotency-Key": "key-2"})

    assert first["id"] != second["id"]
    assert {m["message_id"]["S"] for m in outbound_messages()} == {first["id"], second["id"]}
    assert len(queued()) == 2


def test_without_a_key_each_post_is_a_new_message(gateway: Runtime, lambda_context):
    receive_inbound(lambda_context)

    first = post_message(FREE_FORM)
    second = post_message(FREE_FORM)

    assert first[0] == second[0] == 202
    assert first[1]["id"] != second[1]["id"]
    assert len(outbound_messages()) == 2
    assert [m["Attributes"]["MessageGroupId"] for m in queued()] == [GROUP, GROUP]


def test_a_refused_send_does_not_use_up_its_key(gateway: Runtime, lambda_context):
    # Given a reply refused because the window is closed
    status, answer = post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})
    assert status == 422

    # When the contact writes and the caller retries with the same key
    receive_inbound(lambda_context)
    status, answer = post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})

    # Then the retry is judged afresh and sent
    assert status == 202, answer
    assert len(queued()) == 1


class ProcessDied(BaseException):
    """The Lambda environment dying mid-request (a timeout, out of memory): no ``except
    Exception`` runs, so Powertools' in-progress record stays behind, as it would."""


def die_once(monkeypatch: pytest.MonkeyPatch, owner: Any, method: str) -> None:
    """``owner.method`` dies the first time it is called, and works afterwards."""
    original = getattr(owner, method)
    calls = 0

    def dying(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ProcessDied
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, dying)


def lambda_timeout_passes() -> None:
    """Powertools holds a request's key in progress until the dead invocation's timeout: the
    lock expires, as the Lambda timeout passing would."""
    table = os.environ["IDEMPOTENCY_TABLE"]
    dynamodb = boto3.client("dynamodb")
    for item in dynamodb.scan(TableName=table)["Items"]:
        dynamodb.update_item(
            TableName=table,
            Key={"id": item["id"]},
            UpdateExpression="SET in_progress_expiration = :past",
            ExpressionAttributeValues={":past": {"N": "0"}},
        )


def test_a_retry_after_a_crash_past_the_enqueue_sends_once(
    gateway: Runtime, lambda_context, monkeypatch
):
    # Given a reply with a key, whose function dies after queueing it, before Powertools saved
    # the answer (the caller got no answer)
    receive_inbound(lambda_context)
    die_once(monkeypatch, gateway.idempotency, "save_success")
    with pytest.raises(ProcessDied):
        post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})

    # When the caller retries with the same key, once the dead invocation's lock expired
    lambda_timeout_passes()
    status, answer = post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})

    # Then the answer names the message the first try accepted: one message, queued once
    assert status == 202, answer
    [stored] = outbound_messages()
    assert stored["message_id"]["S"] == answer["id"]
    [message] = queued()
    assert message["MessageAttributes"]["message_id"]["StringValue"] == answer["id"]
    # and the next retry gets the same answer from Powertools' saved record
    assert post_message(FREE_FORM, {"Idempotency-Key": "reply-1"}) == (status, answer)


def test_a_retry_after_a_crash_before_the_enqueue_queues_the_message(
    gateway: Runtime, lambda_context, monkeypatch
):
    # Given a reply recorded as accepted, whose function died before it reached the queue
    receive_inbound(lambda_context)
    die_once(monkeypatch, gateway.queue, "enqueue")
    with pytest.raises(ProcessDied):
        post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})
    assert queued() == []

    # When the caller retries with the same key
    lambda_timeout_passes()
    status, answer = post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})

    # Then the recorded message is the one queued, once
    assert status == 202, answer
    assert [m["message_id"]["S"] for m in outbound_messages()] == [answer["id"]]
    [message] = queued()
    assert message["MessageAttributes"]["message_id"]["StringValue"] == answer["id"]


def test_a_retry_after_a_crash_with_another_body_is_a_conflict(
    gateway: Runtime, lambda_context, monkeypatch
):
    receive_inbound(lambda_context)
    die_once(monkeypatch, gateway.idempotency, "save_success")
    with pytest.raises(ProcessDied):
        post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})
    lambda_timeout_passes()

    status, answer = post_message(
        {**FREE_FORM, "body": "Your order was cancelled."}, {"Idempotency-Key": "reply-1"}
    )

    assert status == 409, answer
    assert answer["error"]["code"] == "idempotency_key_reused"
    [stored] = outbound_messages()
    assert stored["request"]["M"]["body"]["S"] == FREE_FORM["body"]
    assert len(queued()) == 1


def test_a_retry_after_a_crash_is_answered_as_accepted_though_the_window_closed(
    gateway: Runtime, lambda_context, monkeypatch
):
    # Given a reply accepted inside the window, whose answer a crash lost
    receive_inbound(lambda_context)
    die_once(monkeypatch, gateway.idempotency, "save_success")
    with pytest.raises(ProcessDied):
        post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})

    # When the caller retries after the window closed
    lambda_timeout_passes()
    gateway.clock.advance(timedelta(hours=25).total_seconds())
    status, answer = post_message(FREE_FORM, {"Idempotency-Key": "reply-1"})

    # Then it learns that its message was accepted (a 422 would have it sent another way)
    assert status == 202, answer
    [stored] = outbound_messages()
    assert stored["message_id"]["S"] == answer["id"]
    assert len(queued()) == 1


def test_without_a_key_a_message_the_queue_refused_ends_failed(
    gateway: Runtime, lambda_context, monkeypatch
):
    # No retry can reach a message without a key: it must not stay accepted, never sent
    receive_inbound(lambda_context)

    def unreachable(**_: Any) -> None:
        raise ConnectionError("SQS unreachable")

    monkeypatch.setattr(gateway.queue, "enqueue", unreachable)

    with pytest.raises(ConnectionError):
        post_message(FREE_FORM)

    [stored] = outbound_messages()
    assert stored["status"]["S"] == "failed"
    assert stored["error_code"]["S"] == "enqueue_failed"


def test_two_callers_may_pick_the_same_key(gateway: Runtime, lambda_context):
    # Keys are the caller's own: another IAM principal's key does not collide
    receive_inbound(lambda_context)

    status_a, alice = post_as("arn:aws:iam::123456789012:user/alice", FREE_FORM, "key-1")
    status_b, bob = post_as("arn:aws:iam::123456789012:user/bob", FREE_FORM, "key-1")
    again = post_as("arn:aws:iam::123456789012:user/alice", FREE_FORM, "key-1")

    assert status_a == status_b == 202
    assert alice["id"] != bob["id"]
    assert again == (202, alice)
    assert len(outbound_messages()) == 2


# ---------------------------------------------------------------------- the send queue


def test_identical_messages_enqueued_directly_are_each_sent_once(
    gateway: Runtime, fake_twilio: FakeTwilio, send_queue: SendQueueDriver, lambda_context
):
    # Given another AWS service sending the same text twice within 5 minutes, as the README
    # says: a deduplication id of its own per message
    receive_inbound(lambda_context)
    sqs = boto3.client("sqs")
    url = os.environ["SEND_QUEUE_URL"]
    body = json.dumps(FREE_FORM)
    for deduplication_id in ("reminder-1", "reminder-2", "reminder-2"):  # the last, a retry
        sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId=GROUP,
            MessageDeduplicationId=deduplication_id,
        )  # fmt: skip

    # Then both go out, the retry does not
    send_queue.run()
    assert [r.form()["Body"] for r in fake_twilio.requests] == [[FREE_FORM["body"]]] * 2


def test_a_message_enqueued_without_a_deduplication_id_is_refused_not_merged(gateway: Runtime):
    # The queue does not deduplicate by content: it would silently drop the second of two
    # identical messages. A sender that names none learns at once.
    with pytest.raises(ClientError, match="MessageDeduplicationId"):
        boto3.client("sqs").send_message(
            QueueUrl=os.environ["SEND_QUEUE_URL"],
            MessageBody=json.dumps(FREE_FORM),
            MessageGroupId=GROUP,
        )


# ---------------------------------------------------------------------- GET /v1/messages/{id}


@pytest.mark.parametrize(
    "message_id", ["0123456789abcdef0123456789abcdef", "SM" + "9" * 32, "no%20such%20message"]
)
def test_an_unknown_message_is_not_found(gateway: Runtime, message_id):
    status, answer = get_message(message_id)

    assert status == 404
    assert answer["error"]["code"] == "message_not_found"


def test_an_inbound_message_is_shown_by_its_message_sid(gateway: Runtime, lambda_context):
    # Given a message the contact sent
    receive_inbound(lambda_context, body="Hello, is my order on its way?")

    # When it is looked up by Twilio's MessageSid
    status, view = get_message(INBOUND_SID)

    # Then it is shown as inbound, from the contact to the sender
    assert status == 200
    assert view["id"] == INBOUND_SID
    assert view["direction"] == "inbound"
    assert view["from"] == CONTACT
    assert view["to"] == SENDER
    assert view["twilio_sid"] == INBOUND_SID
    assert view["body"] == "Hello, is my order on its way?"
    assert view["category"] is None
    assert view["created_at"] == "2026-11-25T09:00:00Z"


# ---------------------------------------------------------------------- several accounts


class TestSeveralAccounts:
    """An ISV's gateway: two accounts (two WABAs), each with its own sender and templates."""

    ACCOUNT = "AC" + "1" * 32
    OTHER_ACCOUNT = "AC" + "2" * 32
    OTHER_SENDER = "whatsapp:+15005550001"
    OTHER_TOKEN = "other-account-token"

    @pytest.fixture
    def two_accounts(self, gateway: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        secret = {
            "accounts": [
                {
                    "account_sid": self.ACCOUNT,
                    "auth_token": TEST_AUTH_TOKEN,
                    "senders": [SENDER],
                },
                {
                    "account_sid": self.OTHER_ACCOUNT,
                    "auth_token": self.OTHER_TOKEN,
                    "senders": [self.OTHER_SENDER],
                },
            ]
        }
        arn = boto3.client("secretsmanager").create_secret(
            Name="whatsapp-gateway/twilio-accounts", SecretString=json.dumps(secret)
        )["ARN"]
        monkeypatch.setenv("TWILIO_ACCOUNTS_SECRET", arn)
        monkeypatch.delenv("TWILIO_AUTH_TOKEN")
        gateway.__dict__.pop("twilio_settings", None)
        gateway.__dict__.pop("webhook_settings", None)

    def receive_inbound_to_other_sender(self, lambda_context: Any) -> None:
        sid = "SM" + "c" * 32
        form = inbound_form(
            AccountSid=self.OTHER_ACCOUNT,
            To=self.OTHER_SENDER,
            MessageSid=sid,
            SmsSid=sid,
            SmsMessageSid=sid,
        )
        event = webhook_event(form, token=self.OTHER_TOKEN)
        assert inbound.handler(event, lambda_context)["statusCode"] == 200

    def test_each_sender_has_its_own_window_with_the_contact(
        self, gateway: Runtime, two_accounts: None, lambda_context
    ):
        # Given the contact wrote to the first sender only
        receive_inbound(lambda_context)
        request = {**FREE_FORM, "from": self.OTHER_SENDER}

        # Then the other sender may not reply free-form
        status, answer = post_message(request)
        assert_refused(status, answer, 422, "outside_service_window")

        # until the contact writes to it too; its messages have their own FIFO group
        self.receive_inbound_to_other_sender(lambda_context)
        status, answer = post_message(request)
        assert status == 202, answer
        [message] = queued()
        assert message["Attributes"]["MessageGroupId"] == "+15005550001/+15005550006"
        _, view = get_message(answer["id"])
        assert view["from"] == self.OTHER_SENDER

    def test_without_a_default_sender_from_is_required(
        self, gateway: Runtime, two_accounts: None, lambda_context, monkeypatch
    ):
        # Given two senders and no WHATSAPP_FROM
        monkeypatch.delenv("WHATSAPP_FROM")
        gateway.__dict__.pop("twilio_settings", None)
        receive_inbound(lambda_context)

        status, answer = post_message(FREE_FORM)

        message = assert_refused(status, answer, 400, "sender_required")
        assert "from" in message

    @pytest.mark.parametrize(
        "request_body",
        [
            pytest.param(BY_SID, id="by-content-sid"),
            pytest.param(BY_NAME, id="by-name"),
        ],
    )
    def test_a_template_of_the_other_account_is_not_found(
        self, gateway: Runtime, two_accounts: None, request_body
    ):
        # Given the template is synced for the other account (its WABA) only
        seed_template(account_sid=self.OTHER_ACCOUNT)

        # When the first account's sender sends it
        status, answer = post_message({**request_body, "from": SENDER})

        # Then it is refused: Meta approved it for the other WABA, not for this sender
        assert_refused(status, answer, 422, "template_not_found")
