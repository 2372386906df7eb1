"""Every request the Messages adapter sends to Twilio, and every answer the fake gives in
Twilio's place, checked against Twilio's own OpenAPI description of the 2010 API
(``../shared/twilio-oai/twilio_api_v2010.json``)."""

from typing import Any

import pytest

from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_CONTACT, TEST_SENDER
from tests.fake_twilio import (
    SENT_AT,
    Answer,
    FakeTwilio,
    message_json,
    message_sid,
    messages_path,
    page_json,
)
from tests.twilio_contract import (
    ANSWER_FORMATS,
    FORM,
    REQUEST_FORMATS,
    TWILIO_OAI,
    assert_valid_create,
    assert_valid_list,
    load_spec,
    operation_of,
    validate_schema,
)
from whatsapp_gateway.adapters.twilio_rest import TwilioRest
from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.models.accounts import TwilioAccount
from whatsapp_gateway.models.twilio import SendRequest

SENDER = Address.parse(TEST_SENDER)
CONTACT = Address.parse(TEST_CONTACT)
ACCOUNT = TwilioAccount.model_validate(
    {"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN, "senders": [TEST_SENDER]}
)
CONTENT_SID = "HX" + "0123456789abcdef" * 2
STATUS_CALLBACK = "https://gateway.example.test/webhooks/twilio/status?message_id=m-1"
MEDIA = ("https://media.example.test/a.jpg", "https://media.example.test/b.pdf")

REPRESENTATIVE_SENDS = {
    "free-form": {"body": "Your order shipped"},
    "free-form-with-callback": {"body": "Your order shipped", "status_callback": STATUS_CALLBACK},
    "media": {"media_urls": MEDIA},
    "body-and-media": {"body": "Invoice", "media_urls": MEDIA, "status_callback": STATUS_CALLBACK},
    "template": {
        "content_sid": CONTENT_SID,
        "content_variables": {"1": "Ana", "2": "Tuesday 10:00"},
        "status_callback": STATUS_CALLBACK,
    },
    "template-without-variables": {"content_sid": CONTENT_SID},
    "template-to-a-user-id": {
        "to": Address.parse("whatsapp:US.13491208655302741918"),
        "content_sid": CONTENT_SID,
    },
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document = load_spec()
    if document is None:
        pytest.skip(
            f"Twilio's OpenAPI descriptions are not at {TWILIO_OAI}: the contract tests need "
            "the shared folder beside the repository"
        )
    return document


# --- sends ----------------------------------------------------------------------------------


def _send(fields: dict[str, Any]) -> FakeTwilio:
    fake = FakeTwilio()
    request = SendRequest.model_validate({"from_": SENDER, "to": CONTACT, **fields})
    TwilioRest(TwilioSettings.model_validate({}), fake).send(ACCOUNT, request)
    return fake


def test_every_format_the_checked_schemas_declare_is_checked(spec):
    create, listing = operation_of(spec, "post"), operation_of(spec, "get")
    request_schemas = [
        create["requestBody"]["content"][FORM]["schema"],
        *(p["schema"] for p in create["parameters"] + listing["parameters"]),
    ]
    answer_schemas = [
        spec["components"]["schemas"]["api.v2010.account.message"],
        listing["responses"]["200"]["content"]["application/json"]["schema"],
    ]

    assert _formats(request_schemas) <= set(REQUEST_FORMATS.checkers)
    assert _formats(answer_schemas) <= set(ANSWER_FORMATS.checkers)


def _formats(node: Any) -> set[str]:
    if isinstance(node, list):
        return {found for item in node for found in _formats(item)}
    if not isinstance(node, dict):
        return set()
    found = {node["format"]} if isinstance(node.get("format"), str) else set()
    return found | {f for key, value in node.items() if key != "format" for f in _formats(value)}


@pytest.mark.parametrize("fields", REPRESENTATIVE_SENDS.values(), ids=REPRESENTATIVE_SENDS.keys())
def test_each_send_is_a_valid_create_message_request(spec, fields):
    [request] = _send(fields).requests

    assert_valid_create(spec, request)


@pytest.mark.parametrize("fields", REPRESENTATIVE_SENDS.values(), ids=REPRESENTATIVE_SENDS.keys())
def test_the_fakes_answer_to_each_send_is_a_created_message(spec, fields):
    created = operation_of(spec, "post")["responses"]["201"]["content"]["application/json"]
    [answer] = _send(fields).answers

    assert answer.status == 201
    validate_schema(spec, created["schema"], answer.body, ANSWER_FORMATS)


# --- the reconciling listing ----------------------------------------------------------------


@pytest.fixture
def listed() -> FakeTwilio:
    """messages_to over two pages, the second reached through Twilio's next_page_uri."""
    fake = FakeTwilio()
    message = message_json(message_sid(1), sender=TEST_SENDER, contact=TEST_CONTACT)
    sent = message_json(
        message_sid(2), sender=TEST_SENDER, contact=TEST_CONTACT, status="sent", sent_at=SENT_AT
    )
    next_page = f"{messages_path()}?From=whatsapp%3A%2B14155238886&PageSize=50&Page=1"
    fake.queue(
        Answer(200, page_json([message], page=0, next_page_uri=next_page)),
        Answer(200, page_json([sent], page=1, next_page_uri=None)),
    )
    TwilioRest(TwilioSettings.model_validate({}), fake).messages_to(
        ACCOUNT, SENDER, CONTACT, SENT_AT
    )
    return fake


def test_each_listing_request_is_a_valid_list_message_request(spec, listed):
    assert len(listed.requests) == 2
    for request in listed.requests:
        assert_valid_list(spec, request)


def test_the_fakes_listing_answers_are_message_pages(spec, listed):
    page = operation_of(spec, "get")["responses"]["200"]["content"]["application/json"]

    for answer in listed.answers:
        assert answer.status == 200
        validate_schema(spec, page["schema"], answer.body, ANSWER_FORMATS)
