"""The Twilio Messages adapter on the official SDK: a recording fake as its HTTP layer, and, for
the timeout and the TWILIO_API_URL seam, the SDK's own HTTP client against a local server."""

import json
import logging
import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, ReadTimeout
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from infra.local.moto import free_port
from infra.local.twilio_standin import TwilioStandIn
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_CONTACT, TEST_SENDER
from tests.fake_twilio import (
    API,
    SENT_AT,
    Answer,
    FakeTwilio,
    error_answer,
    message_json,
    message_sid,
    messages_path,
    page_json,
)
from whatsapp_gateway.adapters import twilio_rest
from whatsapp_gateway.adapters.twilio_rest import (
    TwilioRest,
    twilio_http_client,
)
from whatsapp_gateway.clock import Clock
from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.twilio_errors import TwilioCallError
from whatsapp_gateway.models.accounts import TwilioAccount
from whatsapp_gateway.models.twilio import ListedMessage, SendRequest, SentMessage

SENDER = Address.parse(TEST_SENDER)
CONTACT = Address.parse(TEST_CONTACT)
ACCOUNT = TwilioAccount.model_validate(
    {"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN, "senders": [TEST_SENDER]}
)
OTHER_ACCOUNT = TwilioAccount.model_validate(
    {"account_sid": "AC" + "2" * 32, "auth_token": "other-token", "senders": ["+15005550001"]}
)
CONTENT_SID = "HX" + "a1" * 16
STATUS_CALLBACK = "https://gateway.example.test/webhooks/twilio/status?message_id=m-1"
MEDIA = ["https://media.example.test/a.jpg", "https://media.example.test/b.png"]


def settings(**environment: str) -> TwilioSettings:
    return TwilioSettings.model_validate(environment)


def text(body: str = "Your order shipped", **fields: Any) -> SendRequest:
    return SendRequest(from_=SENDER, to=CONTACT, body=body, **fields)


def template(**fields: Any) -> SendRequest:
    return SendRequest(from_=SENDER, to=CONTACT, content_sid=CONTENT_SID, **fields)


@pytest.fixture
def fake() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
def messages(fake: FakeTwilio) -> TwilioRest:
    return TwilioRest(settings(), fake)


# --- what is sent ---------------------------------------------------------------------------


def test_a_free_form_send_posts_body_each_media_url_and_the_status_callback(messages, fake):
    sent = messages.send(ACCOUNT, text(media_urls=MEDIA, status_callback=STATUS_CALLBACK))

    assert sent == SentMessage(sid=message_sid(1), status="queued")
    [request] = fake.requests
    assert (request.method, request.url) == ("POST", API + messages_path())
    assert request.auth == (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)
    assert request.form() == {
        "From": [TEST_SENDER],
        "To": [TEST_CONTACT],
        "Body": ["Your order shipped"],
        "MediaUrl": MEDIA,
        "StatusCallback": [STATUS_CALLBACK],
    }


def test_unset_fields_are_left_out(messages, fake):
    messages.send(ACCOUNT, text())

    assert fake.requests[0].form() == {
        "From": [TEST_SENDER],
        "To": [TEST_CONTACT],
        "Body": ["Your order shipped"],
    }


def test_media_go_without_a_body(messages, fake):
    messages.send(ACCOUNT, SendRequest(from_=SENDER, to=CONTACT, media_urls=MEDIA[:1]))

    assert fake.requests[0].form() == {
        "From": [TEST_SENDER],
        "To": [TEST_CONTACT],
        "MediaUrl": MEDIA[:1],
    }


def test_a_template_send_posts_the_content_sid_and_its_variables_as_a_json_string(messages, fake):
    variables = {"1": "Ana", "2": "Tuesday 10:00", "name": "café"}

    messages.send(ACCOUNT, template(content_variables=variables, status_callback=STATUS_CALLBACK))

    form = fake.requests[0].form()
    assert form.keys() == {"From", "To", "ContentSid", "ContentVariables", "StatusCallback"}
    assert form["ContentSid"] == [CONTENT_SID]
    [encoded] = form["ContentVariables"]
    assert json.loads(encoded) == variables


def test_a_template_without_variables_sends_no_content_variables(messages, fake):
    messages.send(ACCOUNT, template())

    assert fake.requests[0].form() == {
        "From": [TEST_SENDER],
        "To": [TEST_CONTACT],
        "ContentSid": [CONTENT_SID],
    }


def test_a_business_scoped_user_id_is_addressed_as_twilio_writes_it(messages, fake):
    contact = Address.parse("whatsapp:US.13491208655302741918")

    messages.send(ACCOUNT, SendRequest(from_=SENDER, to=contact, content_sid=CONTENT_SID))

    assert fake.requests[0].form()["To"] == ["whatsapp:US.13491208655302741918"]


@pytest.mark.parametrize(
    "fields",
    [
        {"body": "hi", "content_sid": CONTENT_SID},
        {"media_urls": MEDIA, "content_sid": CONTENT_SID},
        {},
        {"body": ""},
        {"body": "hi", "content_variables": {"1": "x"}},
        {"media_urls": ["http://media.example.test/a.jpg"]},
        {"content_sid": "HX123"},
        {"body": "hi", "status_callback": "not a url"},
    ],
    ids=[
        "body-and-template",
        "media-and-template",
        "no-content",
        "empty-body",
        "variables-without-template",
        "media-over-http",
        "malformed-content-sid",
        "malformed-status-callback",
    ],
)
def test_a_request_twilio_would_misread_is_refused_before_any_call(fields):
    with pytest.raises(ValidationError):
        SendRequest(from_=SENDER, to=CONTACT, **fields)


# --- clients per account --------------------------------------------------------------------


def test_one_client_per_account_built_on_first_use_and_rebuilt_when_the_token_rotates(
    fake, monkeypatch
):
    built: list[str] = []

    def counting_client(account_sid: str, token: str, **kwargs: Any) -> Client:
        built.append(account_sid)
        return Client(account_sid, token, **kwargs)

    monkeypatch.setattr(twilio_rest, "Client", counting_client)
    messages = TwilioRest(settings(), fake)
    assert built == []

    messages.send(ACCOUNT, text())
    messages.send(ACCOUNT, text())
    messages.send(OTHER_ACCOUNT, SendRequest(from_="whatsapp:+15005550001", to=CONTACT, body="x"))
    rotated = TwilioAccount.model_validate(
        {"account_sid": TEST_ACCOUNT_SID, "auth_token": "rotated-token"}
    )
    messages.send(rotated, text())
    messages.send(rotated, text())

    assert built == [TEST_ACCOUNT_SID, OTHER_ACCOUNT.account_sid, TEST_ACCOUNT_SID]
    assert [request.auth for request in fake.requests] == [
        (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN),
        (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN),
        (OTHER_ACCOUNT.account_sid, "other-token"),
        (TEST_ACCOUNT_SID, "rotated-token"),
        (TEST_ACCOUNT_SID, "rotated-token"),
    ]
    assert fake.requests[2].url == API + messages_path(OTHER_ACCOUNT.account_sid)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, 20429, True),
        (429, 63018, True),
        (500, 20500, True),
        (503, 20503, True),
        (400, 63016, False),
        (400, 21211, False),
        (400, 63024, False),
        (400, 63003, False),
        (400, 21656, False),
        (400, 63049, False),
        (400, 63032, False),
        (400, 21610, False),
        (401, 20003, False),
        (404, 20404, False),
    ],
)
def test_each_twilio_error_raises_one_error_type_saying_whether_to_retry(
    messages, fake, status, code, retryable
):
    fake.queue(error_answer(status, code, "Twilio's explanation"))

    with pytest.raises(TwilioCallError) as raised:
        messages.send(ACCOUNT, text())

    error = raised.value
    assert (error.retryable, error.status, error.code) == (retryable, status, code)
    assert error.message == "Twilio's explanation"
    assert error.maybe_sent is (status >= 500)
    assert len(fake.requests) == 1  # retrying is the queue's job, never the SDK's


@pytest.mark.parametrize(
    ("answer", "retryable"),
    [
        (Answer(502, "<html>Bad Gateway</html>"), True),
        (Answer(429, {"message": "Too Many Requests", "status": 429}), True),
        (Answer(400, {"message": "Bad request", "status": 400}), False),
    ],
    ids=["html-502", "429-without-code", "400-without-code"],
)
def test_an_answer_without_a_twilio_code_is_classified_by_its_status(
    messages, fake, answer, retryable
):
    fake.queue(answer)

    with pytest.raises(TwilioCallError) as raised:
        messages.send(ACCOUNT, text())

    # The SDK repeats the HTTP status as the code: no Twilio code is reported.
    assert (raised.value.retryable, raised.value.code) == (retryable, None)
    assert raised.value.status == answer.status


def test_a_problem_details_answer_is_classified_like_the_classic_one(messages, fake):
    # The SDK raises another exception type for RFC 9457 answers.
    fake.queue(
        Answer(
            429,
            {
                "type": "https://www.twilio.com/docs/errors/20429",
                "title": "Too Many Requests",
                "status": 429,
                "code": 20429,
                "detail": "Slow down",
            },
        )
    )

    with pytest.raises(TwilioCallError) as raised:
        messages.send(ACCOUNT, text())

    assert (raised.value.retryable, raised.value.code, raised.value.message) == (
        True,
        20429,
        "Slow down",
    )


@pytest.mark.parametrize(
    ("failure", "maybe_sent"),
    [
        (ReadTimeout("read timed out"), True),
        (ConnectTimeout("connect timed out"), False),
        (RequestsConnectionError("connection reset"), True),
    ],
    ids=["read-timeout", "connect-timeout", "connection-lost"],
)
def test_no_answer_is_retryable_and_says_whether_twilio_may_have_the_message(
    messages, fake, failure, maybe_sent
):
    fake.queue(failure)

    with pytest.raises(TwilioCallError) as raised:
        messages.send(ACCOUNT, text())

    error = raised.value
    assert (error.retryable, error.status, error.code) == (True, None, None)
    assert error.maybe_sent is maybe_sent
    assert type(failure).__name__ in error.message


def test_a_refusal_quoting_the_number_keeps_it_out_of_the_errors_text_and_traceback(messages, fake):
    quoted = f"The 'To' number {TEST_CONTACT} is not a valid phone number."
    fake.queue(error_answer(400, 21211, quoted))

    with pytest.raises(TwilioCallError) as raised:
        messages.send(ACCOUNT, text())

    assert raised.value.message == quoted  # kept for the message record
    logged = "".join(traceback.format_exception(raised.value))
    assert "5005550006" not in logged
    assert "Your order shipped" not in logged


# --- the TWILIO_API_URL seam ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_url", "base"),
    [
        ("http://127.0.0.1:8099", "http://127.0.0.1:8099"),
        ("http://twilio.fake.test/prefix/", "http://twilio.fake.test/prefix"),
    ],
    ids=["host-and-port", "with-a-path"],
)
def test_api_url_receives_every_message_request_with_its_path(fake, api_url, base):
    messages = TwilioRest(settings(TWILIO_API_URL=api_url), fake)

    messages.send(ACCOUNT, text())

    assert fake.requests[0].url == base + messages_path()


def test_api_url_receives_content_api_requests_too(fake):
    fake.queue(Answer(200, {"contents": [], "meta": {"key": "contents", "next_page_url": None}}))
    http = twilio_http_client(settings(TWILIO_API_URL="http://127.0.0.1:8099"), fake)

    Client(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, http_client=http).content.v1.contents.list()

    assert fake.requests[0].url == "http://127.0.0.1:8099/v1/Content"


def test_api_url_keeps_the_query_of_a_next_page_url(fake):
    next_page = f"{messages_path()}?To=whatsapp%3A%2B15005550006&Page=1&PageToken=PASM{'f' * 32}"
    fake.queue(
        Answer(200, page_json([], page=0, next_page_uri=next_page)),
        Answer(200, page_json([], page=1, next_page_uri=None)),
    )
    messages = TwilioRest(settings(TWILIO_API_URL="http://127.0.0.1:8099"), fake)

    messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT)

    assert fake.requests[1].url == "http://127.0.0.1:8099" + next_page


# --- reconciling: the messages sent to a contact since an attempt ---------------------------


def listed_json(number: int, created_at: datetime, **fields: Any) -> dict[str, Any]:
    return message_json(
        message_sid(number),
        sender=TEST_SENDER,
        contact=TEST_CONTACT,
        created_at=created_at,
        **fields,
    )


def test_messages_to_lists_the_pairs_messages_unfiltered_by_date_sent_across_pages(messages, fake):
    # Given Twilio holding, newest first: one message it still queues (no date_sent) and one it
    # sent, then on the next page one created at the very time asked for
    next_page = f"{messages_path()}?PageSize=50&Page=1&PageToken=PASM{'f' * 32}"
    fake.queue(
        Answer(
            200,
            page_json(
                [
                    listed_json(3, SENT_AT + timedelta(seconds=20), body="Still queued"),
                    listed_json(
                        2, SENT_AT + timedelta(seconds=10), status="delivered", sent_at=SENT_AT
                    ),
                ],
                page=0,
                next_page_uri=next_page,
            ),
        ),
        Answer(200, page_json([listed_json(1, SENT_AT)], page=1, next_page_uri=None)),
    )

    # When the adapter lists the messages created since SENT_AT
    found = messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT)

    # Then every one of them comes back, newest first, with its creation time and text
    assert found == [
        ListedMessage(
            sid=message_sid(3),
            status="queued",
            date_created=SENT_AT + timedelta(seconds=20),
            body="Still queued",
        ),
        ListedMessage(
            sid=message_sid(2), status="delivered", date_created=SENT_AT + timedelta(seconds=10)
        ),
        ListedMessage(sid=message_sid(1), status="queued", date_created=SENT_AT),
    ]
    # and the pair is asked for without any DateSent filter (it would hide the queued one)
    first, second = fake.requests
    assert (first.method, first.url) == ("GET", API + messages_path())
    assert first.query() == {
        "From": [TEST_SENDER],
        "To": [TEST_CONTACT],
        "PageSize": ["50"],
    }
    assert (second.method, second.url) == ("GET", API + next_page)


def test_messages_to_stops_at_the_first_message_created_before_the_time(messages, fake):
    # Given a first page ending with a message created a second before the time asked for, and
    # more pages behind it
    next_page = f"{messages_path()}?PageSize=50&Page=1&PageToken=PASM{'f' * 32}"
    fake.queue(
        Answer(
            200,
            page_json(
                [listed_json(2, SENT_AT), listed_json(1, SENT_AT - timedelta(seconds=1))],
                page=0,
                next_page_uri=next_page,
            ),
        )
    )

    # When the adapter lists the messages created since then
    found = messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT)

    # Then it keeps the newer one and reads no further page
    assert [message.sid for message in found] == [message_sid(2)]
    assert len(fake.requests) == 1


def test_messages_to_compares_times_whatever_their_zone(messages, fake):
    fake.queue(Answer(200, page_json([listed_json(1, SENT_AT)], page=0, next_page_uri=None)))
    an_hour_ahead_in_madrid = (SENT_AT + timedelta(hours=1)).astimezone(
        timezone(timedelta(hours=1))
    )

    assert messages.messages_to(ACCOUNT, SENDER, CONTACT, an_hour_ahead_in_madrid) == []


def test_a_listing_that_does_not_reach_the_time_within_its_limit_is_not_taken_as_complete(
    messages, fake, monkeypatch
):
    # Given a limit of three messages, and Twilio listing four created since the time
    monkeypatch.setattr(twilio_rest, "RECONCILE_LISTING_LIMIT", 3)
    recent = [listed_json(n, SENT_AT + timedelta(seconds=n)) for n in (4, 3, 2, 1)]
    fake.queue(Answer(200, page_json(recent, page=0, next_page_uri=None)))

    # When the adapter lists them
    with pytest.raises(TwilioCallError) as raised:
        messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT)

    # Then it cannot tell: retry later, and reconcile again before any send
    assert (raised.value.retryable, raised.value.maybe_sent) == (True, True)


def test_messages_to_refuses_a_time_without_a_zone(messages, fake):
    with pytest.raises(ValueError, match="timezone-aware"):
        messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT.replace(tzinfo=None))

    assert fake.requests == []


@pytest.mark.parametrize(
    ("answer", "retryable", "code"),
    [
        (error_answer(429, 20429, "Too Many Requests"), True, 20429),
        (Answer(500, "Internal Server Error"), True, None),
        (error_answer(401, 20003, "Authenticate"), False, 20003),
    ],
    ids=["throttled", "server-error", "unauthorized"],
)
def test_a_failed_listing_raises_the_same_error_type(messages, fake, answer, retryable, code):
    fake.queue(answer)

    with pytest.raises(TwilioCallError) as raised:
        messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT)

    assert (raised.value.retryable, raised.value.code) == (retryable, code)
    assert raised.value.status == answer.status


def test_an_answer_the_sdk_cannot_read_is_not_passed_off_as_a_refusal(messages, fake):
    fake.queue(Answer(200, {"messages": [], "media": []}))

    with pytest.raises(TwilioException, match="can not be deserialized"):
        messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT)


# --- the local stand-in lists as Twilio does -------------------------------------------------


@pytest.fixture
def stand_in() -> Iterator[tuple[TwilioStandIn, str]]:
    """The local stand-in, and its URL."""
    twilio = TwilioStandIn(
        account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN, clock=Clock(SENT_AT)
    )
    yield twilio, twilio.start(free_port())
    twilio.stop()


def test_the_stand_in_lists_a_message_it_still_queues_but_no_date_sent_filter_matches_it(
    stand_in,
):
    # Given the gateway's adapter pointed at the stand-in, which took a message it has not
    # sent yet (no status callback URL: it stays queued)
    twilio, url = stand_in
    messages = TwilioRest(settings(TWILIO_API_URL=url))
    sent = messages.send(ACCOUNT, text())
    [held] = twilio.messages.values()
    assert (held["status"], held["date_sent"]) == ("queued", None)

    # When the worker's reconciling listing asks for the pair's messages since the send
    found = messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT - timedelta(minutes=2))

    # Then the queued message is there
    assert [message.sid for message in found] == [sent.sid]
    # but a DateSent filter, as Twilio applies it, leaves it out until it is sent
    client = Client(
        TEST_ACCOUNT_SID,
        TEST_AUTH_TOKEN,
        http_client=twilio_http_client(settings(TWILIO_API_URL=url)),
    )
    since = SENT_AT - timedelta(minutes=2)
    assert client.messages.list(to=TEST_CONTACT, date_sent_after=since) == []
    held["date_sent"] = format_datetime(SENT_AT)
    assert [m.sid for m in client.messages.list(to=TEST_CONTACT, date_sent_after=since)] == [
        sent.sid
    ]


# --- the SDK's own HTTP client, over a socket -----------------------------------------------


class LocalTwilio(ThreadingHTTPServer):
    """A minimal Twilio on 127.0.0.1: creates and lists messages, optionally slowly."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LocalTwilioHandler)
        self.paths: list[str] = []
        self.forms: list[dict[str, list[str]]] = []
        self.delay = 0.0
        self.release = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _LocalTwilioHandler(BaseHTTPRequestHandler):
    server: LocalTwilio

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        self.server.paths.append(self.path)
        self.server.forms.append(form)
        self.server.release.wait(self.server.delay)
        created = message_json(
            message_sid(len(self.server.forms)), sender=form["From"][0], contact=form["To"][0]
        )
        self._answer(HTTPStatus.CREATED, created)

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self._answer(HTTPStatus.OK, page_json([], page=0, next_page_uri=None))

    def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request line holds numbers."""


@pytest.fixture
def local_twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalTwilio]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = LocalTwilio()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_sdks_http_client_sends_to_the_api_url(local_twilio):
    messages = TwilioRest(settings(TWILIO_API_URL=local_twilio.url))

    sent = messages.send(ACCOUNT, text(status_callback=STATUS_CALLBACK))

    assert sent == SentMessage(sid=message_sid(1), status="queued")
    assert local_twilio.paths == [messages_path()]
    assert local_twilio.forms[0]["To"] == [TEST_CONTACT]


def test_the_configured_timeout_reaches_the_socket(local_twilio):
    local_twilio.delay = 5.0
    messages = TwilioRest(
        settings(TWILIO_API_URL=local_twilio.url, TWILIO_HTTP_TIMEOUT_SECONDS="0.2")
    )

    started = datetime.now(UTC)
    with pytest.raises(TwilioCallError) as raised:
        messages.send(ACCOUNT, text())

    assert datetime.now(UTC) - started < timedelta(seconds=local_twilio.delay)
    assert (raised.value.retryable, raised.value.maybe_sent) == (True, True)
    assert "ReadTimeout" in raised.value.message


def test_nothing_logged_holds_a_number_or_a_body(local_twilio, caplog):
    caplog.set_level(logging.INFO)
    messages = TwilioRest(settings(TWILIO_API_URL=local_twilio.url))

    messages.send(ACCOUNT, text())
    messages.messages_to(ACCOUNT, SENDER, CONTACT, SENT_AT)

    assert len(local_twilio.paths) == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "5005550006" not in logged
    assert "4155238886" not in logged
    assert "Your order shipped" not in logged
