"""Every request the Messages adapter sends to Twilio, and every answer the fake gives in
Twilio's place, checked against Twilio's own OpenAPI description of the 2010 API
(``../shared/twilio-oai/twilio_api_v2010.json``)."""

import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from jsonschema import Draft4Validator, FormatChecker  # type: ignore[import-untyped]

from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_CONTACT, TEST_SENDER
from tests.fake_twilio import (
    SENT_AT,
    Answer,
    FakeTwilio,
    SentRequest,
    message_json,
    message_sid,
    messages_path,
    page_json,
)
from whatsapp_gateway.adapters.twilio_messages import TwilioMessages
from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.models.accounts import TwilioAccount
from whatsapp_gateway.models.twilio import SendRequest

TWILIO_OAI = Path(__file__).resolve().parents[2].parent / "shared" / "twilio-oai"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
FORM = "application/x-www-form-urlencoded"

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

# --- formats: Twilio's own, and the standard ones jsonschema leaves unchecked by default ---

REQUEST_FORMATS = FormatChecker(formats=())
ANSWER_FORMATS = FormatChecker(formats=())


def _text(check: Any) -> Any:
    """A format check that passes values of other types (the schema's ``type`` judges them)."""
    return lambda value: not isinstance(value, str) or check(value)


def _absolute_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _twilio_uri(value: str) -> bool:
    """Twilio answers its ``*_uri`` fields relative to https://api.twilio.com."""
    return value.startswith("/") or _absolute_url(value)


def _phone_number(value: str) -> bool:
    """E.164, or a channel address (``whatsapp:+14155238886``), as Twilio describes it."""
    return bool(re.fullmatch(r"\+[1-9]\d{1,14}|[a-z]+:\S+", value))


def _date_time(value: str) -> bool:
    return "T" in value and datetime.fromisoformat(value).tzinfo is not None


for checker in (REQUEST_FORMATS, ANSWER_FORMATS):
    checker.checks("phone-number")(_text(_phone_number))
    checker.checks("date-time", raises=ValueError)(_text(_date_time))
    checker.checks("int64")(lambda value: not isinstance(value, int) or -(2**63) <= value < 2**63)
REQUEST_FORMATS.checks("uri")(_text(_absolute_url))
ANSWER_FORMATS.checks("uri")(_text(_twilio_uri))
ANSWER_FORMATS.checks("date-time-rfc-2822", raises=(ValueError, TypeError))(
    _text(parsedate_to_datetime)
)
ANSWER_FORMATS.checks("currency")(_text(lambda value: re.fullmatch("[A-Za-z]{3}", value)))
ANSWER_FORMATS.checks("uri-map")(
    lambda value: not isinstance(value, dict) or all(map(_twilio_uri, value.values()))
)


# --- the OpenAPI document -------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """Twilio's description of the 2010 API, with OpenAPI 3.0's ``nullable`` written as JSON
    Schema (a ``null`` type)."""
    if not TWILIO_OAI.is_dir():
        pytest.skip(
            f"Twilio's OpenAPI descriptions are not at {TWILIO_OAI}: the contract tests need "
            "the shared folder beside the repository"
        )
    document: dict[str, Any] = _nullable_as_null(
        json.loads((TWILIO_OAI / "twilio_api_v2010.json").read_text())
    )
    return document


def _nullable_as_null(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_as_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: _nullable_as_null(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if "$ref" in schema:
            return {"anyOf": [schema, {"type": "null"}]}
        if "type" in schema:
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _validate(
    spec: dict[str, Any], schema: dict[str, Any], instance: Any, formats: FormatChecker
) -> None:
    """Validates with every ``$ref`` resolved within the document."""
    Draft4Validator({**schema, "components": spec["components"]}, format_checker=formats).validate(
        instance
    )


def _operation(spec: dict[str, Any], method: str) -> dict[str, Any]:
    operation: dict[str, Any] = spec["paths"][MESSAGES][method]
    return operation


def _path_parameters(request: SentRequest, spec: dict[str, Any]) -> dict[str, str]:
    """The path's parameters, after checking the request goes to the path on the API's host."""
    [server] = spec["paths"][MESSAGES].get("servers", spec["servers"])
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}" == server["url"]
    # re.split keeps the parameter names at the odd positions.
    pattern = "".join(
        f"(?P<{piece}>[^/]+)" if index % 2 else re.escape(piece)
        for index, piece in enumerate(re.split(r"\{(\w+)\}", MESSAGES))
    )
    matched = re.fullmatch(pattern, parts.path)
    assert matched, f"{parts.path} is not {MESSAGES}"
    return matched.groupdict()


def _check_parameters(
    spec: dict[str, Any], operation: dict[str, Any], place: str, values: dict[str, list[str]]
) -> None:
    declared = {p["name"]: p for p in operation["parameters"] if p["in"] == place}
    assert values.keys() <= declared.keys(), f"not {place} parameters: {values.keys() - declared}"
    for name, parameter in declared.items():
        if parameter.get("required"):
            assert name in values, f"required {place} parameter {name} missing"
    for name, given in values.items():
        assert len(given) == 1, f"{name} repeated"
        schema = declared[name]["schema"]
        value = given[0] if schema.get("type") in {None, "string"} else json.loads(given[0])
        _validate(spec, schema, value, REQUEST_FORMATS)


# --- sends ----------------------------------------------------------------------------------


def _send(fields: dict[str, Any]) -> FakeTwilio:
    fake = FakeTwilio()
    request = SendRequest.model_validate({"from_": SENDER, "to": CONTACT, **fields})
    TwilioMessages(TwilioSettings.model_validate({}), fake).send(ACCOUNT, request)
    return fake


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def test_every_format_the_checked_schemas_declare_is_checked(spec):
    create, listing = _operation(spec, "post"), _operation(spec, "get")
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
    operation = _operation(spec, "post")
    [request] = _send(fields).requests

    assert request.method == "POST"
    path = _path_parameters(request, spec)
    _check_parameters(spec, operation, "path", {name: [v] for name, v in path.items()})
    assert request.headers["Content-Type"] == FORM
    assert FORM in operation["requestBody"]["content"]
    assert request.auth == (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)  # HTTP basic, as declared

    schema = operation["requestBody"]["content"][FORM]["schema"]
    form = request.form()
    assert form.keys() <= schema["properties"].keys(), form.keys() - schema["properties"].keys()
    instance: dict[str, Any] = {}
    for name, values in form.items():
        declared = _resolve(spec, schema["properties"][name])
        if declared.get("type") == "array":
            instance[name] = values
        else:
            assert len(values) == 1, f"{name} repeated"
            instance[name] = values[0]
    _validate(spec, schema, instance, REQUEST_FORMATS)
    # Twilio's own "one of" groups: a sender, and some content.
    for group in operation["x-twilio"]["conditional"]:
        assert {_pascal(name) for name in group} & form.keys(), f"none of {group}"
    # Beyond the description: Twilio refuses (21656) variables that are not a JSON object of
    # strings.
    if "ContentVariables" in form:
        variables = json.loads(form["ContentVariables"][0])
        assert isinstance(variables, dict)
        assert all(isinstance(value, str) for value in variables.values())


@pytest.mark.parametrize("fields", REPRESENTATIVE_SENDS.values(), ids=REPRESENTATIVE_SENDS.keys())
def test_the_fakes_answer_to_each_send_is_a_created_message(spec, fields):
    created = _operation(spec, "post")["responses"]["201"]["content"]["application/json"]
    [answer] = _send(fields).answers

    assert answer.status == 201
    _validate(spec, created["schema"], answer.body, ANSWER_FORMATS)


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
    TwilioMessages(TwilioSettings.model_validate({}), fake).messages_to(
        ACCOUNT, SENDER, CONTACT, SENT_AT
    )
    return fake


def test_each_listing_request_is_a_valid_list_message_request(spec, listed):
    operation = _operation(spec, "get")

    assert len(listed.requests) == 2
    for request in listed.requests:
        assert request.method == "GET"
        path = _path_parameters(request, spec)
        _check_parameters(spec, operation, "path", {name: [v] for name, v in path.items()})
        query = {**parse_qs(urlsplit(request.url).query), **request.query()}
        _check_parameters(spec, operation, "query", query)
        assert request.auth == (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)


def test_the_fakes_listing_answers_are_message_pages(spec, listed):
    page = _operation(spec, "get")["responses"]["200"]["content"]["application/json"]

    for answer in listed.answers:
        assert answer.status == 200
        _validate(spec, page["schema"], answer.body, ANSWER_FORMATS)
