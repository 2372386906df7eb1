"""POST /webhooks/twilio/inbound on moto, signed as Twilio signs it."""

import io
import json
import logging
from datetime import timedelta
from typing import Any

import boto3
import pytest

from inbound_webhook import app
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.integration.conftest import NOW, CapturedEvents, inbound_form, webhook_event
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.observability import logger
from whatsapp_gateway.runtime import Runtime

SENDER = Address.parse("whatsapp:+14155238886")
CONTACT = Address.parse("whatsapp:+15005550006")
MESSAGE_SID = "SM0123456789abcdef0123456789abcdef"


def post(event: dict[str, Any], lambda_context: Any) -> int:
    return int(app.handler(event, lambda_context)["statusCode"])


def stored_messages() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName="MessagesTable")["Items"]


def stored_windows() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName="WindowsTable")["Items"]


def test_a_signed_message_is_recorded_extends_the_window_and_is_announced(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    # Given a message Twilio signed with the account's auth token
    event = webhook_event(inbound_form())

    # When it is posted
    response = app.handler(event, lambda_context)

    # Then Twilio gets an empty TwiML answer
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/xml"
    assert response["body"].endswith("<Response/>")
    # and the message is stored once, with Twilio's idempotency token
    [message] = stored_messages()
    assert message["message_id"]["S"] == MESSAGE_SID
    assert message["twilio_idempotency_token"]["S"].startswith("f0e4c2f7")
    assert message["events_published"]["BOOL"] is True
    # and the customer service window is open for 24 hours
    state = gateway.store.contact_state(SENDER, CONTACT)
    assert state.service_window is not None
    assert state.service_window.expires_at == NOW + timedelta(hours=24)
    # and message.received is on the bus, numbers in E.164
    [received] = captured_events.drain()
    assert received["detail-type"] == "message.received"
    assert received["source"] == "whatsapp.gateway"
    assert received["detail"]["message_id"] == MESSAGE_SID
    assert received["detail"]["sender"] == "+14155238886"
    assert received["detail"]["contact"] == "+15005550006"
    assert received["detail"]["body"] == "Hello, is my order on its way?"
    assert received["detail"]["received_at"] == "2026-11-25T09:00:00Z"


def test_a_plain_text_body_is_accepted_like_a_base64_one(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    response = app.handler(webhook_event(inbound_form(), base64_body=False), lambda_context)

    assert response["statusCode"] == 200
    assert len(stored_messages()) == 1


def test_blank_parameters_are_signed_and_kept(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    # Given a media-only message: Twilio sends Body and ButtonPayload blank, and signs them
    form = inbound_form(
        Body="",
        ButtonPayload="",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME",
        MediaContentType0="image/jpeg",
    )

    response = app.handler(webhook_event(form), lambda_context)

    assert response["statusCode"] == 200
    [received] = captured_events.drain()
    assert received["detail"]["body"] == ""
    assert received["detail"]["media"] == [
        {
            "url": "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME",
            "content_type": "image/jpeg",
        }
    ]


def test_unknown_fields_are_kept_with_the_message(gateway: Runtime, lambda_context):
    form = inbound_form(SomeFieldTwilioAddsLater="42")

    assert app.handler(webhook_event(form), lambda_context)["statusCode"] == 200

    [message] = stored_messages()
    assert message["inbound"]["M"]["SomeFieldTwilioAddsLater"]["S"] == "42"


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("bm90IGEgc2lnbmF0dXJl", id="forged"),
    ],
)
def test_an_unsigned_or_forged_request_is_refused_and_changes_nothing(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context, signature
):
    event = webhook_event(inbound_form(), token=None, signature=signature)

    response = app.handler(event, lambda_context)

    assert response["statusCode"] == 403
    assert stored_messages() == []
    assert stored_windows() == []
    assert captured_events.drain() == []


def test_a_request_signed_with_another_token_is_refused(gateway: Runtime, lambda_context):
    event = webhook_event(inbound_form(), token="not-the-auth-token")

    assert app.handler(event, lambda_context)["statusCode"] == 403
    assert stored_messages() == []


def test_a_request_signed_for_another_url_is_refused(gateway: Runtime, lambda_context):
    # The signature covers the URL: a body replayed against another path or query fails.
    event = webhook_event(inbound_form())
    event["rawQueryString"] = "replayed=1"

    assert app.handler(event, lambda_context)["statusCode"] == 403


def test_a_tampered_body_is_refused(gateway: Runtime, lambda_context):
    signed = webhook_event(inbound_form())
    tampered = webhook_event(inbound_form(Body="Send me everything"), token=None)
    tampered["headers"]["x-twilio-signature"] = signed["headers"]["x-twilio-signature"]

    assert app.handler(tampered, lambda_context)["statusCode"] == 403
    assert stored_messages() == []


def test_a_request_for_an_unconfigured_account_is_refused(gateway: Runtime, lambda_context):
    event = webhook_event(inbound_form(AccountSid="AC" + "9" * 32))

    assert app.handler(event, lambda_context)["statusCode"] == 403


def test_a_query_string_is_part_of_the_signed_url(gateway: Runtime, lambda_context):
    event = webhook_event(inbound_form(), query="tenant=acme")

    assert app.handler(event, lambda_context)["statusCode"] == 200


def test_twilio_retrying_a_delivered_webhook_changes_nothing(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    # Given a message already received
    assert app.handler(webhook_event(inbound_form()), lambda_context)["statusCode"] == 200
    first_window = gateway.store.contact_state(SENDER, CONTACT).service_window
    captured_events.drain()

    # When Twilio delivers it again, a minute later
    gateway.clock.advance(60)
    response = app.handler(webhook_event(inbound_form()), lambda_context)

    # Then it is acknowledged, and nothing moves: no second record, event or window change
    assert response["statusCode"] == 200
    assert len(stored_messages()) == 1
    assert captured_events.drain() == []
    assert gateway.store.contact_state(SENDER, CONTACT).service_window == first_window


def test_events_missed_by_a_crash_are_published_by_twilios_retry(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context, monkeypatch
):
    # Given the bus fails after the message was recorded (the Lambda dies: Twilio sees a 5xx)
    real_publish = gateway.events.publish

    def failing_publish(events: Any) -> None:
        raise ConnectionError("EventBridge unreachable")

    monkeypatch.setattr(gateway.events, "publish", failing_publish)
    with pytest.raises(ConnectionError):
        app.handler(webhook_event(inbound_form()), lambda_context)
    assert captured_events.drain() == []

    # When Twilio retries and the bus is back
    monkeypatch.setattr(gateway.events, "publish", real_publish)
    response = app.handler(webhook_event(inbound_form()), lambda_context)

    # Then the event is published exactly once, and a further retry publishes nothing
    assert response["statusCode"] == 200
    assert [e["detail-type"] for e in captured_events.drain()] == ["message.received"]
    assert app.handler(webhook_event(inbound_form()), lambda_context)["statusCode"] == 200
    assert captured_events.drain() == []


@pytest.mark.parametrize("keyword", ["STOP", "stop", "  Unsubscribe "])
def test_an_opt_out_keyword_opts_the_contact_out(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context, keyword
):
    response = app.handler(webhook_event(inbound_form(Body=keyword)), lambda_context)

    assert response["statusCode"] == 200
    assert gateway.store.contact_state(SENDER, CONTACT).opted_out is True
    kinds = [e["detail-type"] for e in captured_events.drain()]
    assert kinds == ["message.received", "contact.opted_out"]


def test_start_opts_the_contact_back_in(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    # Given a contact who opted out
    app.handler(webhook_event(inbound_form(Body="STOP")), lambda_context)
    captured_events.drain()

    # When they write START in a later message
    gateway.clock.advance(5)
    start = inbound_form(Body="START", MessageSid="SM" + "b" * 32)
    response = app.handler(webhook_event(start), lambda_context)

    # Then they are opted in again, and the bus is told
    assert response["statusCode"] == 200
    assert gateway.store.contact_state(SENDER, CONTACT).opted_out is False
    [_received, opted_in] = captured_events.drain()
    assert opted_in["detail-type"] == "contact.opted_in"
    assert opted_in["detail"]["contact"] == "+15005550006"


def test_a_sentence_containing_stop_is_an_ordinary_message(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    app.handler(webhook_event(inbound_form(Body="Please stop the delivery")), lambda_context)

    assert gateway.store.contact_state(SENDER, CONTACT).opted_out is False
    assert [e["detail-type"] for e in captured_events.drain()] == ["message.received"]


def test_a_contact_without_a_phone_number_is_a_valid_contact(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    # A WhatsApp username user known only by a business-scoped user id
    form = inbound_form(From="whatsapp:US.13491208655302741918", WaId=None)

    assert app.handler(webhook_event(form), lambda_context)["statusCode"] == 200

    contact = Address.parse("whatsapp:US.13491208655302741918")
    assert gateway.store.contact_state(SENDER, contact).service_window_open(NOW)
    [received] = captured_events.drain()
    assert received["detail"]["contact"] == "US.13491208655302741918"
    assert received["detail"]["contact_phone_number"] is None


@pytest.mark.parametrize(
    ("form", "field"),
    [
        pytest.param(inbound_form(From=None), "From", id="missing-from"),
        pytest.param(inbound_form(To=None), "To", id="missing-to"),
        pytest.param(inbound_form(MessageSid=None), "MessageSid", id="missing-message-sid"),
        pytest.param(inbound_form(From="+15005550006"), "From", id="from-without-prefix"),
        pytest.param(inbound_form(To="+14155238886"), "To", id="to-without-prefix"),
        pytest.param(inbound_form(From="whatsapp:12345"), "From", id="from-not-e164"),
        pytest.param(inbound_form(NumMedia="many"), "NumMedia", id="num-media-not-a-number"),
        pytest.param(inbound_form(NumMedia="11"), "NumMedia", id="num-media-over-ten"),
        pytest.param(inbound_form(NumMedia="3000000"), "NumMedia", id="num-media-millions"),
        pytest.param(
            inbound_form(Latitude="nan", Longitude="-122.39"), "latitude", id="latitude-nan"
        ),
        pytest.param(
            inbound_form(Latitude="inf", Longitude="-122.39"), "latitude", id="latitude-inf"
        ),
        pytest.param(
            inbound_form(Latitude="1e200", Longitude="-122.39"), "latitude", id="latitude-1e200"
        ),
        pytest.param(
            inbound_form(Latitude="37.78", Longitude="nan"), "longitude", id="longitude-nan"
        ),
        pytest.param(
            inbound_form(Latitude="37.78", Longitude="-inf"), "longitude", id="longitude-inf"
        ),
        pytest.param(
            inbound_form(Latitude="37.78", Longitude="180.5"), "longitude", id="longitude-181"
        ),
        pytest.param(
            # +15005550006 in Arabic-Indic digits but the first: int() reads the same number
            inbound_form(
                From="whatsapp:+1\u0665\u0660\u0660\u0665\u0665\u0665\u0660\u0660\u0660\u0666"
            ),
            "From",
            id="from-arabic-indic-digits",
        ),
    ],
)
def test_an_invalid_message_gets_a_400_naming_the_field_and_changes_nothing(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context, form, field
):
    response = app.handler(webhook_event(form), lambda_context)

    assert response["statusCode"] == 400
    error = json.loads(response["body"])["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert stored_messages() == []
    assert stored_windows() == []
    assert captured_events.drain() == []


def test_a_body_that_is_not_a_form_gets_a_400(gateway: Runtime, lambda_context):
    event = webhook_event(
        inbound_form(), content_type="application/json", body=json.dumps(inbound_form())
    )

    response = app.handler(event, lambda_context)

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "unsupported_content_type"
    assert stored_messages() == []


@pytest.mark.parametrize("base64_body", [True, False], ids=["base64", "plain"])
def test_a_forged_megabyte_of_fields_gets_a_413_and_changes_nothing(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context, base64_body
):
    # Given a forged webhook: the configured AccountSid (not a secret), any signature, and
    # 20,000 fields in 1 MB (checking its signature used to take minutes)
    fields = [(f"F{i}", "x" * 45) for i in range(20_000)]
    form = [*inbound_form().items(), *fields]
    event = webhook_event(form, signature="bm90IGEgc2lnbmF0dXJl", base64_body=base64_body)
    assert len(event["body"]) > 1_000_000

    # When it is posted
    response = app.handler(event, lambda_context)

    # Then it is refused on its size, in the contract's error shape, and nothing is stored
    assert response["statusCode"] == 413
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"])["error"]["code"] == "payload_too_large"
    assert stored_messages() == []
    assert stored_windows() == []
    assert captured_events.drain() == []


def test_twenty_thousand_fields_within_the_size_limit_get_a_400(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    form = [*inbound_form().items(), *[("a", "")] * 20_000]

    response = app.handler(webhook_event(form, signature="bm90IGEgc2lnbmF0dXJl"), lambda_context)

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "too_many_fields"
    assert stored_messages() == []
    assert captured_events.drain() == []


def test_a_signed_form_with_many_repeated_fields_is_accepted(
    gateway: Runtime, captured_events: CapturedEvents, lambda_context
):
    # Given a genuine form with one field repeated 200 times (all of them signed)
    form = [*inbound_form().items(), *[("ListItem", f"item-{i:03}") for i in range(200)]]

    response = app.handler(webhook_event(form), lambda_context)

    assert response["statusCode"] == 200
    [message] = stored_messages()
    assert message["inbound"]["M"]["ListItem"]["S"] == "item-000"


def test_a_garbled_form_gets_a_400(gateway: Runtime, lambda_context):
    event = webhook_event(inbound_form(), body="MessageSid&&&=%zz=")

    response = app.handler(event, lambda_context)

    assert response["statusCode"] == 400
    assert stored_messages() == []


def test_logs_hold_no_phone_number_body_or_signature(gateway: Runtime, lambda_context):
    # Given the function's log lines, exactly as formatted for CloudWatch
    lines = io.StringIO()
    capture = logging.StreamHandler(lines)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    event = webhook_event(inbound_form(Body="my secret order 1234"))

    try:
        app.handler(event, lambda_context)
        app.handler(webhook_event(inbound_form(), token="forged-token"), lambda_context)
    finally:
        logger.handlers.remove(capture)

    logs = lines.getvalue()
    assert "inbound message recorded" in logs
    assert MESSAGE_SID in logs  # the correlation id
    for secret in (
        "+15005550006",
        "15005550006",
        "+14155238886",
        "my secret order",
        TEST_AUTH_TOKEN,
        event["headers"]["x-twilio-signature"],
    ):
        assert secret not in logs


class TestSeveralAccountsFromSecretsManager:
    """Deployed, the accounts and their tokens come from the accounts secret."""

    OTHER_ACCOUNT = "AC" + "2" * 32
    OTHER_SENDER = "whatsapp:+15005550001"

    @pytest.fixture
    def accounts_secret(self, gateway: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        secret = {
            "accounts": [
                {
                    "account_sid": TEST_ACCOUNT_SID,
                    "auth_token": "rotated-new-token",
                    "previous_auth_token": TEST_AUTH_TOKEN,
                    "rotated_at": "2026-11-25T08:30:00Z",
                    "senders": ["whatsapp:+14155238886"],
                },
                {
                    "account_sid": self.OTHER_ACCOUNT,
                    "auth_token": "other-account-token",
                    "senders": [self.OTHER_SENDER],
                },
            ]
        }
        arn = boto3.client("secretsmanager").create_secret(
            Name="whatsapp-gateway/twilio-accounts", SecretString=json.dumps(secret)
        )["ARN"]
        monkeypatch.setenv("TWILIO_ACCOUNTS_SECRET", arn)
        monkeypatch.delenv("TWILIO_AUTH_TOKEN")
        monkeypatch.setenv("TWILIO_AUTH_TOKEN_GRACE_SECONDS", "3600")
        gateway.__dict__.pop("twilio_settings", None)
        gateway.__dict__.pop("webhook_settings", None)

    def test_each_account_signs_with_its_own_token(
        self, gateway: Runtime, accounts_secret: None, lambda_context
    ):
        form = inbound_form(
            AccountSid=self.OTHER_ACCOUNT, To=self.OTHER_SENDER, MessageSid="SM" + "c" * 32
        )

        assert post(webhook_event(form, token="other-account-token"), lambda_context) == 200
        assert post(webhook_event(form, token="rotated-new-token"), lambda_context) == 403

    def test_an_account_cannot_write_in_to_another_accounts_sender(
        self,
        gateway: Runtime,
        accounts_secret: None,
        captured_events: CapturedEvents,
        lambda_context,
    ):
        # Given subaccount B signs, with its own token, a STOP "to" account A's sender
        form = inbound_form(AccountSid=self.OTHER_ACCOUNT, Body="STOP")
        assert form["To"] == SENDER.whatsapp

        # When it is posted
        response = app.handler(webhook_event(form, token="other-account-token"), lambda_context)

        # Then it is refused, and A's contact is not opted out: nothing stored or announced
        assert response["statusCode"] == 403
        assert gateway.store.contact_state(SENDER, CONTACT).opted_out is False
        assert stored_messages() == []
        assert stored_windows() == []
        assert captured_events.drain() == []

    def test_a_sender_no_account_lists_is_refused(
        self, gateway: Runtime, accounts_secret: None, lambda_context
    ):
        form = inbound_form(To="whatsapp:+15005550009")

        assert post(webhook_event(form, token="rotated-new-token"), lambda_context) == 403
        assert stored_messages() == []

    def test_the_previous_token_passes_during_the_grace_period_only(
        self, gateway: Runtime, accounts_secret: None, lambda_context
    ):
        # Rotated at 08:30 with one hour of grace; the clock says 09:00.
        old = webhook_event(inbound_form(), token=TEST_AUTH_TOKEN)
        assert app.handler(old, lambda_context)["statusCode"] == 200
        assert post(webhook_event(inbound_form(), token="rotated-new-token"), lambda_context) == 200

        gateway.clock.advance(30 * 60)  # 09:30: the grace period is over
        late = webhook_event(inbound_form(MessageSid="SM" + "d" * 32), token=TEST_AUTH_TOKEN)
        assert app.handler(late, lambda_context)["statusCode"] == 403
