"""What the functions put in traces, logs, metrics and error answers holds no full phone
number, no message body, no token and no signature: a conversation runs through the API's
routes (their errors too), both webhooks and the send worker, with every trace subsegment, log
line, metric line and error answer recorded."""

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from api import app as api
from inbound_webhook import app as inbound
from status_webhook import app as status_webhook
from tests.conftest import TEST_AUTH_TOKEN
from tests.fake_twilio import Answer, FakeTwilio
from tests.integration.conftest import (
    TEMPLATE_SID,
    LambdaContext,
    SendQueueDriver,
    api_event,
    inbound_form,
    seed_template,
    status_callback_event,
    webhook_event,
)
from whatsapp_gateway.observability import logger, tracer
from whatsapp_gateway.runtime import Runtime

CONTACT = "+15005550006"
OTHER_CONTACT = "+15005550007"
UNKNOWN_SENDER = "+15005550009"
INBOUND_BODY = "Hello, where is parcel 4471?"
REPLY_BODY = "Parcel 4471 left the depot."
VARIABLE_VALUE = "Ada Lovelace"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261125/us-east-1/execute-api/"
    "aws4_request, SignedHeaders=host;x-amz-date, "
    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
)
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken0000"


@dataclass
class RecordedSubsegment:
    name: str
    metadata: list[tuple[str, Any]] = field(default_factory=list)
    annotations: list[tuple[str, Any]] = field(default_factory=list)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata.append((key, value))

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations.append((key, value))


class RecordingTracer:
    """Powertools Tracer's provider (the X-Ray SDK's recorder in Lambda): keeps what the
    functions would send to X-Ray."""

    def __init__(self) -> None:
        self.subsegments: list[RecordedSubsegment] = []

    @contextmanager
    def in_subsegment(self, name: str, **_: Any) -> Iterator[RecordedSubsegment]:
        subsegment = RecordedSubsegment(name)
        self.subsegments.append(subsegment)
        yield subsegment

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.subsegments.append(RecordedSubsegment("(segment)", metadata=[(key, value)]))

    def put_annotation(self, key: str, value: Any) -> None:
        self.subsegments.append(RecordedSubsegment("(segment)", annotations=[(key, value)]))

    def text(self) -> str:
        return "\n".join(
            f"{subsegment.name} {key} {_as_text(value)}"
            for subsegment in self.subsegments
            for key, value in subsegment.metadata + subsegment.annotations
        )


def _as_text(value: Any) -> str:
    try:
        return json.dumps(value, default=repr)
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class Telemetry:
    traces: RecordingTracer
    logs: io.StringIO
    library_logs: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]
    error_answers: list[str] = field(default_factory=list)

    def collect(self) -> dict[str, str]:
        return {
            "traces": self.traces.text(),
            "logs": self.logs.getvalue() + self.library_logs.text,
            "metrics": self.capsys.readouterr().out,
            "error answers": "\n".join(self.error_answers),
        }


@pytest.fixture
def telemetry(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Telemetry]:
    traces = RecordingTracer()
    monkeypatch.setattr(tracer(), "provider", traces)
    logs = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    printed_to = handler.setStream(logs)
    caplog.set_level(logging.INFO)  # the libraries' own loggers, as Lambda prints them
    capsys.readouterr()
    yield Telemetry(traces, logs, caplog, capsys)
    handler.setStream(printed_to)


def signed_api_event(method: str, path: str, query: str = "") -> dict[str, Any]:
    """The business's request as API Gateway hands it over: SigV4-signed."""
    event = api_event(method, path, query)
    event["headers"] |= {"authorization": SIGV4, "x-amz-security-token": SESSION_TOKEN}
    return event


def test_no_trace_log_or_metric_holds_a_number_a_body_a_token_or_a_signature(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    lambda_context: LambdaContext,
    telemetry: Telemetry,
):
    signatures: list[str] = []

    def webhook(handler: Any, event: dict[str, Any]) -> int:
        signatures.append(event["headers"]["x-twilio-signature"])
        response = handler.handler(event, lambda_context)
        if response["statusCode"] >= 400:
            telemetry.error_answers.append(response["body"])
        return int(response["statusCode"])

    def call_api(method: str, path: str, body: Any = None, query: str = "") -> tuple[int, Any]:
        event = signed_api_event(method, path, query)
        if body is not None:
            event["headers"]["content-type"] = "application/json"
            event["body"] = json.dumps(body)
        response = api.handler(event, lambda_context)
        if response["statusCode"] >= 400:
            telemetry.error_answers.append(response["body"])
        return response["statusCode"], json.loads(response["body"])

    # Given a contact who writes in, and a forged webhook
    assert webhook(inbound, webhook_event(inbound_form(Body=INBOUND_BODY))) == 200
    forged = webhook_event(inbound_form(Body=INBOUND_BODY), token="not-the-auth-token")
    assert webhook(inbound, forged) == 403
    seed_template()

    # When the business replies, sends a template, and is refused (closed window, unknown
    # sender), reads the message and the windows
    status, reply = call_api("POST", "/v1/messages", {"to": CONTACT, "body": REPLY_BODY})
    assert status == 202, reply
    template = {
        "to": CONTACT,
        "template": {"content_sid": TEMPLATE_SID},
        "variables": {"1": VARIABLE_VALUE},
    }
    assert call_api("POST", "/v1/messages", template)[0] == 202
    assert call_api("POST", "/v1/messages", {"to": OTHER_CONTACT, "body": REPLY_BODY})[0] == 422
    unknown = {"to": CONTACT, "from": UNKNOWN_SENDER, "body": REPLY_BODY}
    assert call_api("POST", "/v1/messages", unknown)[0] == 422
    windows = f"/v1/contacts/{CONTACT}/windows"
    assert call_api("GET", windows)[0] == 200
    assert call_api("GET", windows, query=f"from=%2B{UNKNOWN_SENDER[1:]}")[0] == 422

    # and the worker sends (Twilio throttles the first try) and Twilio reports the statuses
    fake_twilio.queue(Answer(429, {"code": 20429, "message": f"Too many requests to {CONTACT}"}))
    send_queue.run()
    send_queue.make_visible()
    send_queue.run()
    status, view = call_api("GET", f"/v1/messages/{reply['id']}")
    assert view["to"] == f"whatsapp:{CONTACT}"
    assert view["body"] == REPLY_BODY
    for twilio_status in ("sent", "delivered"):
        callback = status_callback_event(view["twilio_sid"], twilio_status, message_id=reply["id"])
        assert webhook(status_webhook, callback) == 200
    assert call_api("GET", f"/v1/messages/{reply['id']}")[1]["status"] == "delivered"

    # Then the functions did report (the recorder is wired)...
    recorded = telemetry.collect()
    assert "## handler" in {subsegment.name for subsegment in telemetry.traces.subsegments}
    assert "inbound message recorded" in recorded["logs"]
    assert '"MessagesAccepted"' in recorded["metrics"]
    # ...and nothing they reported holds what must stay private
    private = {
        "the contact's number": CONTACT[2:],
        "another contact's number": OTHER_CONTACT[2:],
        "a sender's number": UNKNOWN_SENDER[2:],
        "the business's sender": "4155238886",
        "the inbound body": INBOUND_BODY,
        "the reply": REPLY_BODY,
        "a template value": VARIABLE_VALUE,
        "the auth token": TEST_AUTH_TOKEN,
        "the SigV4 signature": SIGV4.rsplit("=", 1)[1],
        "the session token": SESSION_TOKEN,
        **{f"Twilio's signature {n}": signature for n, signature in enumerate(signatures)},
    }
    leaks = [
        f"{what} in the {where}"
        for where, text in recorded.items()
        for what, secret in private.items()
        if secret in text
    ]
    assert leaks == [], leaks
