"""The event counters behind the dashboard: one metric line per counted event, with its own
dimensions, and none at all when metrics are disabled (as the local stack runs)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from whatsapp_gateway.models.events import ConversationOpened, MessageStatusChanged
from whatsapp_gateway.observability import count_published

AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
FAILED = MessageStatusChanged(
    message_id="m1",
    twilio_sid="SM" + "0" * 32,
    sender="+14155238886",
    contact="+15005550006",
    status="failed",
    previous_status="queued",
    at=AT,
    error_code="63016",
    error_message="outside the allowed window",
)
OPENED = ConversationOpened(
    sender="+14155238886",
    contact="+15005550006",
    category="marketing",
    opened_at=AT,
    expires_at=AT + timedelta(hours=24),
    message_id="m2",
)


def test_each_event_is_counted_with_its_own_dimensions(capsys: pytest.CaptureFixture[str]):
    count_published([FAILED, OPENED])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    counted = [
        (definition["Metrics"][0]["Name"], {d: line[d] for d in definition["Dimensions"][0]})
        for line in lines
        for definition in line["_aws"]["CloudWatchMetrics"]
    ]
    assert counted == [
        ("MessagesByStatus", {"status": "failed", "service": "whatsapp-gateway"}),
        ("MessagesFailed", {"error_code": "63016", "service": "whatsapp-gateway"}),
        ("ConversationsOpened", {"category": "marketing", "service": "whatsapp-gateway"}),
    ]
    assert {line["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in lines} == {
        "WhatsAppGateway"
    }


def test_nothing_is_printed_when_metrics_are_disabled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    count_published([FAILED, OPENED])

    assert capsys.readouterr().out == ""
