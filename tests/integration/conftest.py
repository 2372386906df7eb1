"""Handlers on moto: tables and bus built from template.yaml, a fixed clock, and requests
signed as Twilio signs them."""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import boto3
import pytest
from moto import mock_aws

from infra.sam_template import create_event_buses, create_queues, create_tables
from tests.conftest import PUBLIC_BASE_URL, TEST_AUTH_TOKEN
from whatsapp_gateway.clock import Clock
from whatsapp_gateway.runtime import Runtime, runtime

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
