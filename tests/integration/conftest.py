"""Handlers on moto: tables and bus built from template.yaml, a fixed clock, and requests
signed as Twilio signs them."""

import base64
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.sam_template import create_event_buses, create_queues, create_tables
from tests.conftest import PUBLIC_BASE_URL, TEST_AUTH_TOKEN
from whatsapp_gateway.clock import Clock
from whatsapp_gateway.runtime import Runtime, runtime

if TYPE_CHECKING:
    from tests.fake_twilio import FakeTwilio

EVENTS = Path(__file__).resolve().parent.parent / "events"
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


def load_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def twilio_signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's algorithm, written out: HMAC-SHA1 of the URL followed by each parameter name
    and value, sorted by name, base64-encoded."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def inbound_form(**overrides: str | None) -> dict[str, str]:
    """The recorded Twilio form with fields replaced (None removes one)."""
    form: dict[str, str] = load_event("inbound_whatsapp_form.json")
    for name, value in overrides.items():
        if value is None:
            form.pop(name, None)
        else:
            form[name] = value
    return form


def webhook_event(
    form: Mapping[str, str] | list[tuple[str, str]],
    *,
    path: str = "/webhooks/twilio/inbound",
    token: str | None = TEST_AUTH_TOKEN,
    signature: str | None = None,
    base64_body: bool = True,
    content_type: str = "application/x-www-form-urlencoded; charset=UTF-8",
    query: str = "",
    body: str | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API event of a Twilio webhook, signed with ``token`` unless a
    ``signature`` is given (``token=None`` and no signature: the header is left out)."""
    params = list(form.items()) if isinstance(form, Mapping) else list(form)
    raw_body = body if body is not None else urlencode(params)
    event = load_event("inbound_webhook.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = query
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query))
    event["headers"]["content-type"] = content_type
    url = f"{PUBLIC_BASE_URL}{path}" + (f"?{query}" if query else "")
    if signature is None and token is not None:
        signature = twilio_signature(token, url, params)
    if signature is None:
        del event["headers"]["x-twilio-signature"]
    else:
        event["headers"]["x-twilio-signature"] = signature
    event["isBase64Encoded"] = base64_body
    event["body"] = base64.b64encode(raw_body.encode()).decode() if base64_body else raw_body
    return event


def api_event(method: str, path: str, query: str = "") -> dict[str, Any]:
    event = load_event("inbound_webhook.json")
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    # API Gateway hands over the query parameters decoded
    event["queryStringParameters"] = dict(parse_qsl(query))
    event["headers"] = {"host": "gateway.example.test", "accept": "application/json"}
    event.pop("body")
    event["isBase64Encoded"] = False
    return event


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class CapturedEvents:
    """Everything put on the gateway's bus, through a catch-all rule into an SQS queue."""

    def __init__(self, bus_name: str) -> None:
        self._sqs = boto3.client("sqs")
        events = boto3.client("events")
        self._queue_url = self._sqs.create_queue(QueueName="captured-events")["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        events.put_rule(
            Name="capture-all",
            EventBusName=bus_name,
            EventPattern=json.dumps({"source": ["whatsapp.gateway"]}),
        )
        events.put_targets(
            Rule="capture-all",
            EventBusName=bus_name,
            Targets=[{"Id": "queue", "Arn": queue_arn}],
        )

    def drain(self) -> list[dict[str, Any]]:
        """The events put since the last drain, oldest first."""
        captured: list[dict[str, Any]] = []
        while True:
            answer = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return captured
            for message in messages:
                captured.append(json.loads(message["Body"]))
                self._sqs.delete_message(
                    QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto with the template's tables and bus, named in the environment as the template does."""
    with mock_aws():
        tables = create_tables(boto3.client("dynamodb"))
        buses = create_event_buses(boto3.client("events"))
        queues = create_queues(boto3.client("sqs"))
        monkeypatch.setenv("WINDOWS_TABLE", tables["WindowsTable"])
        monkeypatch.setenv("MESSAGES_TABLE", tables["MessagesTable"])
        monkeypatch.setenv("TEMPLATES_TABLE", tables["TemplatesTable"])
        monkeypatch.setenv("IDEMPOTENCY_TABLE", tables["IdempotencyTable"])
        monkeypatch.setenv("TEMPLATE_SYNC_FUNCTION", "TemplateSyncFunction")
        monkeypatch.setenv("EVENT_BUS_NAME", buses["EventBus"])
        monkeypatch.setenv("SEND_QUEUE_URL", queues["SendQueue"])
        monkeypatch.setenv("SEND_DLQ_URL", queues["SendDeadLetterQueue"])
        runtime.cache_clear()
        yield
        runtime.cache_clear()


@pytest.fixture
def clock() -> Clock:
    return Clock(fixed=NOW)


@pytest.fixture
def gateway(aws: None, clock: Clock) -> Runtime:
    """The runtime the handlers use, on moto, with the fixed clock."""
    deps = runtime()
    deps.clock = clock
    return deps


@pytest.fixture
def captured_events(aws: None) -> CapturedEvents:
    return CapturedEvents("EventBus")


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


# ---------------------------------------------------------------------- the outbound path

TEMPLATE_SID = "HX" + "a" * 32


def seed_template(
    *,
    sid: str = TEMPLATE_SID,
    name: str = "order_update",
    language: str = "en",
    status: str = "approved",
    category: str | None = "UTILITY",
    types: tuple[str, ...] = ("twilio/text",),
    placeholders: tuple[str, ...] = ("1",),
    account_sid: str = "AC" + "1" * 32,
    deleted: bool = False,
) -> str:
    """A synced template in the templates table, as the template sync writes it."""
    item: dict[str, Any] = {
        "sid": {"S": sid},
        "account_sid": {"S": account_sid},
        "name": {"S": name},
        "language": {"S": language},
        "lookup": {"S": f"{account_sid}#{name}#{language}"},
        "status": {"S": status},
        "types": {"L": [{"S": t} for t in types]},
        "placeholders": {"L": [{"S": p} for p in placeholders]},
        "deleted": {"BOOL": deleted},
    }
    if category is not None:
        item["category"] = {"S": category}
    boto3.client("dynamodb").put_item(TableName="TemplatesTable", Item=item)
    return sid


@pytest.fixture
def fake_twilio(gateway: Runtime) -> "Iterator[FakeTwilio]":
    """The official Twilio client with a recording fake as its HTTP layer. Every request the
    code sent during the test is then checked against Twilio's OpenAPI description (when the
    shared folder is there; the contract tests say so when it is not)."""
    from tests.fake_twilio import FakeTwilio  # noqa: PLC0415
    from tests.twilio_contract import assert_valid_request, load_spec  # noqa: PLC0415
    from whatsapp_gateway.adapters.twilio_rest import TwilioRest  # noqa: PLC0415
    from whatsapp_gateway.config import TwilioSettings  # noqa: PLC0415

    fake = FakeTwilio(now=gateway.clock.now)
    gateway.__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=fake)
    yield fake
    if (spec := load_spec()) is not None:
        for request in fake.requests:
            assert_valid_request(spec, request)


class SendQueueDriver:
    """Plays the Lambda SQS event source for the send worker: receives a batch from the FIFO
    queue (moto keeps a group's later messages back while one is in flight), hands it to the
    handler as Lambda would, and deletes what the handler did not report failed."""

    def __init__(
        self, handler: Any, context: Any, clock: Clock | None = None, queue_url: str | None = None
    ) -> None:
        self._clock = clock
        self._sqs = boto3.client("sqs")
        self._url = queue_url or os.environ["SEND_QUEUE_URL"]
        self._handler = handler
        self._context = context
        self._handles: list[str] = []

    def receive_event(self, limit: int = 10) -> dict[str, Any]:
        answer = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=limit,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        self._handles += [message["ReceiptHandle"] for message in messages]
        return {"Records": [self._record(m) for m in messages]}

    def run(self, limit: int = 10) -> dict[str, Any]:
        """One worker invocation on the next batch; returns the handler's answer."""
        return self.deliver(self.receive_event(limit))

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._handler(event, self._context)
        failed = {failure["itemIdentifier"] for failure in answer["batchItemFailures"]}
        for record in event["Records"]:
            if record["messageId"] not in failed:
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=record["receiptHandle"])
        return answer

    def make_visible(self, seconds: float = 30) -> None:
        """Ends the visibility timeout of every message handed out so far, as ``seconds``
        passing would (the gateway's clock moves on too): SQS never hands a message in flight
        out again, so the driver keeps the receipt handles."""
        if self._clock is not None:
            self._clock.advance(seconds)
        for handle in self._handles:
            with suppress(self._sqs.exceptions.ReceiptHandleIsInvalid, ClientError):
                self._sqs.change_message_visibility(
                    QueueUrl=self._url, ReceiptHandle=handle, VisibilityTimeout=0
                )
        self._handles.clear()

    def depth(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def enqueue_directly(
        self,
        body: str,
        group: str = "+14155238886/+15005550006",
        deduplication_id: str | None = None,
    ) -> str:
        """What another AWS service does: the API's JSON, no gateway id, a deduplication id of
        its own (a new one unless given)."""
        return self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=deduplication_id or uuid.uuid4().hex,
        )["MessageId"]

    def _record(self, message: Any) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message["Attributes"],
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "dataType": value["DataType"],
                    "stringListValues": [],
                    "binaryListValues": [],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:SendQueue.fifo",
            "awsRegion": "us-east-1",
        }


@pytest.fixture
def send_queue(gateway: Runtime, lambda_context: LambdaContext) -> SendQueueDriver:
    from send_worker import app as worker  # noqa: PLC0415

    return SendQueueDriver(worker.handler, lambda_context, gateway.clock)


def post_message(
    body: dict[str, Any] | str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST /v1/messages through the API function; the status and the JSON answer."""
    from api import app as api  # noqa: PLC0415

    event = api_event("POST", "/v1/messages")
    event["headers"] = {**event["headers"], "content-type": "application/json", **(headers or {})}
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    response = api.handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def status_callback_event(
    message_sid: str,
    status: str,
    *,
    message_id: str | None,
    error_code: str | None = None,
    token: str | None = TEST_AUTH_TOKEN,
) -> dict[str, Any]:
    """Twilio's signed status callback of one of the gateway's messages."""
    form = {
        "AccountSid": "AC" + "1" * 32,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": "whatsapp:+14155238886",
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "To": "whatsapp:+15005550006",
    }
    if error_code is not None:
        form["ErrorCode"] = error_code
    query = f"message_id={message_id}" if message_id else ""
    return webhook_event(form, path="/webhooks/twilio/status", query=query, token=token)


def emitted_dimensioned_metrics(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """Each metric of the EMF lines the function printed, with its dimensions but ``service``,
    in the order printed."""
    found: list[tuple[str, dict[str, str]]] = []
    for line in stdout.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        for definition in record["_aws"]["CloudWatchMetrics"]:
            [dimension_set] = definition["Dimensions"]
            dimensions = {name: record[name] for name in dimension_set if name != "service"}
            found.extend((metric["Name"], dimensions) for metric in definition["Metrics"])
    return found
