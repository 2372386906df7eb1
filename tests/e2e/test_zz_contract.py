"""Every request the Twilio stand-in received during the e2e run is one Twilio's OpenAPI
description declares (Messages create and list of the 2010 API, ContentAndApprovals of Content
v1), and every answer it gave is what Twilio would answer (``../shared/twilio-oai/``).

Named to run after the scenarios, so that it checks their traffic too; it drives a send of
each kind itself first, so that it also holds when run alone."""

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import FormatChecker  # type: ignore[import-untyped]

from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, Gateway
from tests.e2e.steps import (
    ENDED,
    accepted,
    creates_to,
    exchanges,
    fail_next,
    order_update,
    templates_synced,
    wait_exchanges,
    wait_status,
)
from tests.fake_twilio import SentRequest
from tests.twilio_contract import (
    ANSWER_FORMATS,
    FORM,
    TWILIO_OAI,
    _nullable_as_null,
    assert_valid_create,
    assert_valid_list,
    load_spec,
    operation_of,
    validate_schema,
)

API = "https://api.twilio.com"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CONTENT = "/v1/ContentAndApprovals"
# Twilio's error answer (the description declares none): its code, message and HTTP status.
TWILIO_ERROR = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string", "minLength": 1},
        "more_info": {"type": "string", "format": "uri"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
    },
}
# The Content API answers absolute URLs and ISO 8601 times.
CONTENT_FORMATS = FormatChecker(formats=())


@CONTENT_FORMATS.checks("uri")
def _absolute_uri(value: object) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return parts is None or (parts.scheme in {"http", "https"} and bool(parts.netloc))


@CONTENT_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or (
        "T" in value and datetime.fromisoformat(value).tzinfo is not None
    )


@pytest.fixture(scope="module")
def specs() -> tuple[dict[str, Any], dict[str, Any]]:
    messages = load_spec()
    if messages is None:
        pytest.skip(
            f"Twilio's OpenAPI descriptions are not at {TWILIO_OAI}: the contract test needs "
            "the shared folder beside the repository"
        )
    content: dict[str, Any] = _nullable_as_null(
        json.loads((TWILIO_OAI / "twilio_content_v1.json").read_text())
    )
    return messages, content


def test_every_request_to_the_stand_in_and_every_answer_are_as_twilio_describes_them(
    gateway: Gateway, specs: tuple[dict[str, Any], dict[str, Any]]
):
    messages_spec, content_spec = specs
    templates_synced(gateway)
    # Given traffic of every kind: a free-form reply with a media, a template, a message Twilio
    # refuses, and a template sync on demand (besides whatever the scenarios sent)
    contact, refused = "+15005550190", "+15005550191"
    for someone in (contact, refused):
        assert gateway.write_in(someone, "Hi!")[0] == 200
    fail_next(gateway, refused, 21211)
    sent = [
        accepted(gateway, contact, body="Invoice", media_urls=["https://example.com/a.pdf"]),
        order_update(gateway, contact),
        accepted(gateway, refused, body="Hello?"),
    ]
    listings = _count(exchanges(gateway), CONTENT)
    assert gateway.request("POST", "/v1/templates/sync")[0] == 202
    for message_id in sent:
        wait_status(gateway, message_id, ENDED)
    recorded = wait_exchanges(gateway, lambda done: _count(done, CONTENT) > listings)
    assert len(creates_to(recorded, contact)) == 2
    assert [e["status"] for e in creates_to(recorded, refused)] == [400]

    # Then each request is a declared operation with declared parameters, and its answer is
    # the operation's
    kinds = {"create": 0, "error": 0, "list": 0, "content": 0}
    for exchange in recorded:
        # The stand-in answers 401 to any request without the account's basic credentials.
        assert exchange["status"] != 401, exchange
        operation = (exchange["method"], exchange["path"])
        if operation == ("POST", MESSAGES):
            _assert_create(messages_spec, exchange)
            kinds["create" if exchange["status"] == 201 else "error"] += 1
        elif operation == ("GET", MESSAGES):
            _assert_list(messages_spec, exchange)
            kinds["list"] += 1
        elif operation == ("GET", CONTENT):
            _assert_content_listing(content_spec, exchange)
            kinds["content"] += 1
        else:
            pytest.fail(f"not an operation of the Messages or Content APIs: {operation}")
    # (a listing of messages happens only when a worker reconciles after a crash or a 5xx)
    assert kinds["create"] >= 2
    assert kinds["error"] >= 1
    assert kinds["content"] >= 2


def _count(recorded: list[dict[str, Any]], path: str) -> int:
    return sum(1 for e in recorded if e["path"] == path)


def _sent_request(exchange: dict[str, Any]) -> SentRequest:
    """The exchange as the checks of tests/twilio_contract.py take a request: on Twilio's host,
    with the account's credentials (the stand-in answered 401 otherwise), as a form (which is
    how the stand-in read the body; the SDK's content type is checked in tests/contract)."""
    return SentRequest(
        method=exchange["method"],
        url=API + exchange["path"],
        params=exchange["query"],
        data=exchange["form"],
        headers={"Content-Type": FORM},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=None,
    )


def _assert_create(spec: dict[str, Any], exchange: dict[str, Any]) -> None:
    assert exchange["query"] == {}
    assert_valid_create(spec, _sent_request(exchange))
    answer = exchange["answer"]
    if exchange["status"] == 201:
        created = operation_of(spec, "post")["responses"]["201"]["content"]["application/json"]
        validate_schema(spec, created["schema"], answer, ANSWER_FORMATS)
        assert answer["to"] == exchange["form"]["To"][0]
        assert answer["from"] == exchange["form"]["From"][0]
        assert answer["account_sid"] == ACCOUNT_SID
    else:
        _assert_error(spec, exchange)


def _assert_list(spec: dict[str, Any], exchange: dict[str, Any]) -> None:
    assert exchange["form"] == {}
    assert_valid_list(spec, _sent_request(exchange))
    if exchange["status"] != 200:
        _assert_error(spec, exchange)
        return
    listed = operation_of(spec, "get")["responses"]["200"]["content"]["application/json"]
    validate_schema(spec, listed["schema"], exchange["answer"], ANSWER_FORMATS)


def _assert_error(spec: dict[str, Any], exchange: dict[str, Any]) -> None:
    assert 400 <= exchange["status"] < 600
    validate_schema(spec, TWILIO_ERROR, exchange["answer"], ANSWER_FORMATS)
    assert exchange["answer"]["status"] == exchange["status"]


def _assert_content_listing(spec: dict[str, Any], exchange: dict[str, Any]) -> None:
    operation = spec["paths"][CONTENT]["get"]
    assert operation["operationId"] == "ListContentAndApprovals"
    assert exchange["form"] == {}
    declared = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    query: dict[str, list[str]] = exchange["query"]
    assert query.keys() <= declared.keys(), query.keys() - declared.keys()
    for name, values in query.items():
        [value] = values
        schema = declared[name]
        instance = value if schema.get("type") == "string" else json.loads(value)
        validate_schema(spec, schema, instance, CONTENT_FORMATS)
    assert exchange["status"] == 200, exchange["answer"]
    listing = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validate_schema(spec, listing, exchange["answer"], CONTENT_FORMATS)
    # every field Twilio answers, and no other
    assert set(exchange["answer"]) == set(listing["properties"])
    assert set(exchange["answer"]["meta"]) == set(listing["properties"]["meta"]["properties"])
    item = spec["components"]["schemas"]["content.v1.content_and_approvals"]
    for content in exchange["answer"]["contents"]:
        assert set(content) == set(item["properties"]), set(content) ^ set(item["properties"])
