"""The template sync on moto, against a fake of Twilio's Content API (``ContentAndApprovals``)
injected into the official client: every page read, both approval shapes, each status, a
template removed, a category changed, a page failing midway, two syncs in a row, several
accounts; then GET /v1/templates, POST /v1/templates/sync, and the sends that use the synced
templates. Every page the fake serves is checked against Twilio's own description of the Content
API (``../shared/twilio-oai/twilio_content_v1.json`` and ``..._v2.json``)."""

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, override
from urllib.parse import urlsplit

import boto3
import pytest
from jsonschema import FormatChecker, ValidationError  # type: ignore[import-untyped]
from requests.exceptions import ReadTimeout
from twilio.http import HttpClient
from twilio.http.response import Response

from api import app as api
from inbound_webhook import app as inbound
from template_sync import app as sync_function
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.fake_content import LISTING_PATH, FakeContent, approval, content, content_sid
from tests.integration.conftest import (
    NOW,
    CapturedEvents,
    LambdaContext,
    api_event,
    inbound_form,
    post_message,
    webhook_event,
)
from tests.twilio_contract import TWILIO_OAI, _nullable_as_null, validate_schema
from whatsapp_gateway.adapters.twilio_rest import TwilioRest
from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.domain.templates import ApprovalStatus, Template
from whatsapp_gateway.domain.twilio_errors import TwilioCallError
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.models.content import ContentAndApprovals
from whatsapp_gateway.runtime import Runtime
from whatsapp_gateway.template_sync import SyncResult, sync_templates

OTHER_ACCOUNT_SID = "AC" + "2" * 32
OTHER_AUTH_TOKEN = "other-account-token-0000"
OTHER_SENDER = "whatsapp:+15005550001"
CONTACT = "+15005550006"
STATUS_CHANGED = "template.status_changed"
FIRST_PAGE = {"PageSize": "1000"}

# Content types whose placeholders stand in nested texts: titles, media and button URLs.
CARD = {
    "twilio/card": {
        "title": "Order {{1}} is on its way",
        "subtitle": None,
        "media": ["https://media.example.test/orders/{{2}}.png"],
        "actions": [
            {"type": "URL", "title": "Track", "url": "https://shop.example.test/track/{{3}}"}
        ],
    }
}
CALL_TO_ACTION = {
    "twilio/call-to-action": {
        "body": "Your booking is confirmed",
        "actions": [
            {"type": "URL", "title": "Manage", "url": "https://book.example.test/b/{{1}}"},
            {"type": "PHONE_NUMBER", "title": "Call us", "phone": "+15005550006"},
        ],
    }
}
LIST_PICKER = {
    "twilio/list-picker": {
        "body": "Pick a delivery slot, {{1}}",
        "button": "Slots",
        "items": [
            {"item": "Morning", "id": "am", "description": "9:00-12:00"},
            {"item": "Afternoon", "id": "pm", "description": "13:00-17:00"},
        ],
    }
}
LOCATION = {"twilio/location": {"latitude": 39.7392, "longitude": -104.9903, "label": "Fake Shop"}}


# ---------------------------------------------------------------------- helpers


def with_fields(item: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A content item with fields replaced (``None`` included: the schema allows it)."""
    return {**item, **fields}


def install(gateway: Runtime, transport: HttpClient) -> None:
    gateway.__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=transport)


def sync(gateway: Runtime, account_index: int = 0) -> SyncResult:
    """One account's sync, as the function runs it."""
    return sync_templates(
        gateway.accounts().accounts[account_index],
        twilio=gateway.twilio,
        store=gateway.templates,
        events=gateway.events,
        now=gateway.clock.now(),
    )


def run_sync_function() -> dict[str, Any]:
    """The template-sync Lambda, as its schedule invokes it."""
    answer: dict[str, Any] = sync_function.handler({}, LambdaContext())
    return answer


def stored(gateway: Runtime, account_sid: str = TEST_ACCOUNT_SID) -> dict[str, Template]:
    return gateway.templates.templates_of(account_sid)


def list_templates(query: str = "") -> list[dict[str, Any]]:
    """GET /v1/templates through the API function."""
    response = api.handler(api_event("GET", "/v1/templates", query), LambdaContext())
    assert response["statusCode"] == 200, response
    templates: list[dict[str, Any]] = json.loads(response["body"])["templates"]
    return templates


def listed_by_sid(query: str = "") -> dict[str, dict[str, Any]]:
    return {template["sid"]: template for template in list_templates(query)}


def get_message(message_id: str) -> dict[str, Any]:
    response = api.handler(api_event("GET", f"/v1/messages/{message_id}"), LambdaContext())
    assert response["statusCode"] == 200, response
    view: dict[str, Any] = json.loads(response["body"])
    return view


def send(reference: dict[str, str], variables: dict[str, str] | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"to": CONTACT, "template": reference}
    if variables:
        body["variables"] = variables
    return post_message(body)


def by_sid(number: int) -> dict[str, str]:
    return {"content_sid": content_sid(number)}


def by_name(name: str, language: str = "en") -> dict[str, str]:
    return {"name": name, "language": language}


def assert_refused(answer: tuple[int, Any], code: str) -> str:
    status, body = answer
    assert status == 422, body
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


def status_changes(captured_events: CapturedEvents) -> list[dict[str, Any]]:
    """The template events put on the bus since the last drain; any other kind fails."""
    events = captured_events.drain()
    assert {event["detail-type"] for event in events} <= {STATUS_CHANGED}
    return [event["detail"] for event in events]


def open_service_window() -> None:
    """The contact writes in: the customer service window opens."""
    assert inbound.handler(webhook_event(inbound_form()), LambdaContext())["statusCode"] == 200


def forget_fingerprint() -> None:
    """The account's sync marker as written before the listing fingerprint existed (or by a
    sync that crashed before its end): the next sync compares every template in full."""
    boto3.client("dynamodb").update_item(
        TableName=os.environ["TEMPLATES_TABLE"],
        Key={"sid": {"S": f"sync#{TEST_ACCOUNT_SID}"}},
        UpdateExpression="REMOVE digest",
    )


def page_requests(fake: FakeContent) -> list[dict[str, str]]:
    """The query of each request the fake received (every one is a listing: the fake says so)."""
    queries = []
    for request in fake.requests:
        target = request.removeprefix(f"GET {LISTING_PATH}?")
        assert target != request, request
        queries.append(json.loads(target))
    return queries


def next_pages(count: int, size: int) -> list[dict[str, str]]:
    """The queries the SDK sends for pages 1.. ``count - 1``: Twilio's next_page_url."""
    return [
        {"Page": str(page), "PageSize": str(size), "PageToken": f"PT{page}"}
        for page in range(1, count)
    ]


def emitted_metrics(stdout: str) -> dict[str, float]:
    """The metrics of the EMF lines the function printed (a metric's values summed)."""
    metrics: dict[str, float] = {}
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for definition in record["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                value = record[metric["Name"]]
                metrics[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return metrics


@dataclass
class TemplateWrites:
    """The writes of the templates store's DynamoDB client to the templates table, call by call
    (the client is shared with the other stores: their tables are left out)."""

    table: str
    batches: list[list[str]] = field(default_factory=list)  # SIDs of each BatchWriteItem
    puts: list[str] = field(default_factory=list)  # SID of each PutItem

    def record_batch(self, params: dict[str, Any], **_: Any) -> None:
        requests = params["RequestItems"].get(self.table, [])
        if requests:
            self.batches.append(
                [next(iter(request.values()))["Item"]["sid"]["S"] for request in requests]
            )

    def record_put(self, params: dict[str, Any], **_: Any) -> None:
        if params["TableName"] == self.table:
            self.puts.append(params["Item"]["sid"]["S"])

    @property
    def templates(self) -> list[str]:
        """The SIDs of the template items written; the per-account sync marker left out."""
        batched = [sid for batch in self.batches for sid in batch]
        return batched + [sid for sid in self.puts if not sid.startswith("sync#")]

    @property
    def calls(self) -> int:
        """BatchWriteItem and PutItem calls that wrote templates (the marker's left out)."""
        return len(self.batches) + len([sid for sid in self.puts if not sid.startswith("sync#")])

    @property
    def markers(self) -> list[str]:
        return [sid for sid in self.puts if sid.startswith("sync#")]

    def clear(self) -> None:
        self.batches.clear()
        self.puts.clear()


class ContentByAccount(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """Twilio's Content API for several accounts: a request goes to the fake of the account
    whose credentials it carries (Twilio lists the templates of the account that asks)."""

    def __init__(self, fakes: dict[tuple[str, str], FakeContent]) -> None:
        super().__init__(logging.getLogger(__name__), is_async=False)
        self.fakes = fakes

    @override
    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        assert auth in self.fakes, f"credentials of no account: {auth and auth[0]}"
        answer: Response = self.fakes[auth].request(
            method, url, params, data, headers, auth, timeout, allow_redirects
        )
        return answer


class UnansweredPage(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """The account's Content API, except that page ``page`` never answers (Twilio down)."""

    def __init__(self, fake: FakeContent, page: int) -> None:
        super().__init__(logging.getLogger(__name__), is_async=False)
        self.fake = fake
        self.page = page

    @override
    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if f"Page={self.page}&" in url:
            raise ReadTimeout(f"fake: no answer within {timeout} s")
        answer: Response = self.fake.request(
            method, url, params, data, headers, auth, timeout, allow_redirects
        )
        return answer


# ---------------------------------------------------------------------- Twilio's description

CONTENT_V1 = "twilio_content_v1.json"
CONTENT_V2 = "twilio_content_v2.json"
LISTING_V2_PATH = "/v2/ContentAndApprovals"
CONTENT_FORMATS = FormatChecker(formats=())


def _absolute_uri(value: object) -> bool:
    """``uri`` as the Content API answers it: absolute (its pages link to content.twilio.com)."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return "T" in value and datetime.fromisoformat(value).tzinfo is not None


CONTENT_FORMATS.checks("uri")(_absolute_uri)
CONTENT_FORMATS.checks("date-time", raises=ValueError)(_date_time)


@cache
def content_specs() -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Twilio's descriptions of Content v1 and v2 (``nullable`` written as a null type); None
    when the shared folder is not beside the repository."""
    if not TWILIO_OAI.is_dir():
        return None
    v1, v2 = (
        _nullable_as_null(json.loads((TWILIO_OAI / name).read_text()))
        for name in (CONTENT_V1, CONTENT_V2)
    )
    return v1, v2


def listing_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    return schema


def _declared(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The properties a schema (or the schema its ``$ref`` names) declares."""
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return set(schema["properties"])


def assert_valid_page(v1: dict[str, Any], v2: dict[str, Any], page: dict[str, Any]) -> None:
    """A ListContentAndApprovals answer as v1 describes it, with every field Twilio answers
    and no other; and each content an item of the v2 listing as well."""
    schema = listing_schema(v1, LISTING_PATH)
    validate_schema(v1, schema, page, CONTENT_FORMATS)
    assert set(page) == set(schema["properties"])
    assert set(page["meta"]) == set(schema["properties"]["meta"]["properties"])
    item_fields = _declared(v1, schema["properties"]["contents"]["items"])
    v2_items = listing_schema(v2, LISTING_V2_PATH)["properties"]["contents"]["items"]
    for item in page["contents"]:
        assert set(item) == item_fields, set(item) ^ item_fields
        validate_schema(v2, v2_items, item, CONTENT_FORMATS)


def assert_valid_listing_request(v1: dict[str, Any], request: str) -> None:
    """A recorded request (``GET /path?{query as JSON}``): an operation the description
    declares, with query parameters it declares, each valid."""
    method, target = request.split(" ", 1)
    path, query = target.split("?", 1)
    operation = v1["paths"][path][method.lower()]
    assert operation["operationId"] == "ListContentAndApprovals"
    declared = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    values: dict[str, str] = json.loads(query)
    assert values.keys() <= declared.keys(), values.keys() - declared.keys()
    for name, value in values.items():
        schema = declared[name]
        instance = value if schema.get("type") == "string" else json.loads(value)
        validate_schema(v1, schema, instance, CONTENT_FORMATS)


def assert_served_as_described(fake: FakeContent) -> None:
    specs = content_specs()
    if specs is None:  # the contract tests below say so
        return
    v1, v2 = specs
    for page in fake.answers:
        assert_valid_page(v1, v2, page)
    for request in fake.requests:
        assert_valid_listing_request(v1, request)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def served() -> Iterator[list[FakeContent]]:
    """The fakes of a test: every page they served and every request they received are
    checked against Twilio's description when the test ends."""
    fakes: list[FakeContent] = []
    yield fakes
    for fake in fakes:
        assert_served_as_described(fake)


@pytest.fixture
def twilio_content(gateway: Runtime, served: list[FakeContent]) -> FakeContent:
    """The account's Content API: the test sets its ``contents``."""
    fake = FakeContent()
    served.append(fake)
    install(gateway, fake)
    return fake


@pytest.fixture
def template_writes(gateway: Runtime) -> Iterator[TemplateWrites]:
    writes = TemplateWrites(os.environ["TEMPLATES_TABLE"])
    events = gateway.templates._client.meta.events
    events.register("before-parameter-build.dynamodb.BatchWriteItem", writes.record_batch)
    events.register("before-parameter-build.dynamodb.PutItem", writes.record_put)
    yield writes
    events.unregister("before-parameter-build.dynamodb.BatchWriteItem", writes.record_batch)
    events.unregister("before-parameter-build.dynamodb.PutItem", writes.record_put)


@pytest.fixture
def content_specs_or_skip() -> tuple[dict[str, Any], dict[str, Any]]:
    specs = content_specs()
    if specs is None:
        pytest.skip(
            f"Twilio's Content API descriptions are not at {TWILIO_OAI}: the contract checks "
            "need the shared folder beside the repository"
        )
    return specs


# ---------------------------------------------------------------------- every page


@pytest.mark.parametrize(
    ("count", "page_size", "pages"),
    [
        pytest.param(5, 2, 3, id="5-templates-3-pages"),
        pytest.param(6, 2, 3, id="6-templates-3-full-pages"),
        pytest.param(31, 7, 5, id="31-templates-more-than-a-write-batch"),
    ],
)
def test_every_page_is_read_and_every_template_stored(
    gateway: Runtime, twilio_content: FakeContent, count, page_size, pages
):
    # Given Twilio lists the account's templates a few at a time
    twilio_content.contents = [content(number) for number in range(1, count + 1)]
    twilio_content.page_size = page_size

    # When the sync function runs
    answer = run_sync_function()

    # Then it asked for Twilio's largest page, then followed every next page to the last
    assert page_requests(twilio_content) == [FIRST_PAGE, *next_pages(pages, page_size)]
    assert len(twilio_content.answers) == pages
    assert twilio_content.answers[-1]["meta"]["next_page_url"] is None
    # And every template is stored, and listed by the API
    expected = {content_sid(number) for number in range(1, count + 1)}
    assert answer == {"synced": {TEST_ACCOUNT_SID: count}}
    assert set(stored(gateway)) == expected
    assert {template.sid for template, _ in gateway.templates.all_templates()} == expected
    assert set(listed_by_sid()) == expected


def test_a_synced_template_is_stored_and_listed_as_twilio_describes_it(
    gateway: Runtime, twilio_content: FakeContent
):
    # Given one template in Brazilian Portuguese, with media, samples and Meta's approval
    twilio_content.contents = [
        with_fields(
            content(
                7,
                name="Pedido_Enviado",
                language="pt_BR",
                types={
                    "twilio/text": {"body": "Olá {{1}}, o pedido {{2}} foi enviado"},
                    "twilio/media": {
                        "body": "Olá {{1}}",
                        "media": ["https://media.example.test/{{3}}.pdf"],
                    },
                },
                approval_requests=approval("approved", "MARKETING"),
            ),
            variables={"1": "Ada", "2": "A-1001", "3": "invoice"},
        )
    ]

    # When it is synced
    sync(gateway)

    # Then the store holds it as Twilio and Meta see it
    assert stored(gateway) == {
        content_sid(7): Template(
            sid=content_sid(7),
            account_sid=TEST_ACCOUNT_SID,
            name="Pedido_Enviado",
            language="pt_BR",
            status=ApprovalStatus.APPROVED,
            category=Category.MARKETING,
            types=frozenset({"twilio/text", "twilio/media"}),
            placeholders=frozenset({"1", "2", "3"}),
            variables={"1": "Ada", "2": "A-1001", "3": "invoice"},
        )
    }
    # And GET /v1/templates shows it, seen by this sync, categories in lower case
    [listed] = list_templates()
    assert listed == {
        "sid": content_sid(7),
        "account_sid": TEST_ACCOUNT_SID,
        "name": "Pedido_Enviado",
        "language": "pt_BR",
        "category": "marketing",
        "status": "approved",
        "rejection_reason": None,
        "variables": {"1": "Ada", "2": "A-1001", "3": "invoice"},
        "types": ["twilio/media", "twilio/text"],
        "placeholders": ["1", "2", "3"],
        "last_seen_at": listed["last_seen_at"],
    }
    assert datetime.fromisoformat(listed["last_seen_at"]) == NOW


# ---------------------------------------------------------------------- approvals


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        pytest.param("unsubmitted", "unsubmitted", id="unsubmitted"),
        pytest.param("received", "received", id="received"),
        pytest.param("pending", "pending", id="pending"),
        pytest.param("approved", "approved", id="approved"),
        pytest.param("APPROVED", "approved", id="approved-upper-case"),
        pytest.param("rejected", "rejected", id="rejected"),
        pytest.param("paused", "paused", id="paused"),
        pytest.param("disabled", "disabled", id="disabled"),
        pytest.param("in_appeal", "pending", id="unknown-is-never-approved"),
    ],
)
def test_both_approval_shapes_give_the_same_status_and_category(
    gateway: Runtime, twilio_content: FakeContent, twilio_status, expected
):
    # Given the same approval flat (ContentAndApprovals) and nested under whatsapp
    # (ApprovalRequests)
    reason = "Variables at the end of the body" if expected == "rejected" else ""
    twilio_content.contents = [
        content(
            number,
            approval_requests=approval(
                twilio_status, "MARKETING", nested=nested, rejection_reason=reason
            ),
        )
        for number, nested in ((1, False), (2, True))
    ]

    # When they are synced
    sync(gateway)

    # Then both are stored with the same status, category and rejection reason
    flat, nested_one = stored(gateway)[content_sid(1)], stored(gateway)[content_sid(2)]
    assert (flat.status, flat.category, flat.rejection_reason) == (
        ApprovalStatus(expected),
        Category.MARKETING,
        reason or None,
    )
    assert (nested_one.status, nested_one.category, nested_one.rejection_reason) == (
        flat.status,
        flat.category,
        flat.rejection_reason,
    )
    # And the API shows them so
    listed = listed_by_sid()
    assert [listed[content_sid(n)]["status"] for n in (1, 2)] == [expected, expected]
    assert [listed[content_sid(n)]["rejection_reason"] for n in (1, 2)] == [reason or None] * 2


@pytest.mark.parametrize(
    "approval_requests",
    [
        pytest.param({}, id="empty"),
        pytest.param(None, id="null"),
        pytest.param({"whatsapp": {}}, id="nested-empty"),
        pytest.param(approval("", ""), id="flat-without-status"),
    ],
)
def test_a_template_without_a_whatsapp_approval_is_unsubmitted_and_cannot_be_sent(
    gateway: Runtime, twilio_content: FakeContent, approval_requests
):
    # Given a template never submitted to WhatsApp
    twilio_content.contents = [with_fields(content(1), approval_requests=approval_requests)]

    # When it is synced
    sync(gateway)

    # Then it is unsubmitted, never approved, with no category
    template = stored(gateway)[content_sid(1)]
    assert (template.status, template.category) == (ApprovalStatus.UNSUBMITTED, None)
    assert list_templates()[0]["status"] == "unsubmitted"
    # And a send with it is refused
    message = assert_refused(send(by_sid(1), {"1": "Ada", "2": "A-1"}), "template_not_approved")
    assert "unsubmitted" in message


def test_a_status_the_gateway_does_not_know_is_never_sent(
    gateway: Runtime, twilio_content: FakeContent
):
    # Given Twilio reports a status this gateway has never heard of
    twilio_content.contents = [content(1, approval_requests=approval("in_appeal", "UTILITY"))]

    # When it is synced
    sync(gateway)

    # Then a send by SID or by name is refused as not approved
    assert stored(gateway)[content_sid(1)].status is not ApprovalStatus.APPROVED
    for reference in (by_sid(1), by_name("template_1")):
        assert_refused(send(reference, {"1": "Ada", "2": "A-1"}), "template_not_approved")


@pytest.mark.parametrize(
    ("meta_category", "category"),
    [
        pytest.param("UTILITY", "utility", id="utility"),
        pytest.param("MARKETING", "marketing", id="marketing"),
        pytest.param("AUTHENTICATION", "authentication", id="authentication"),
        pytest.param("TRANSACTIONAL", "utility", id="legacy-transactional"),
        pytest.param("Marketing", "marketing", id="mixed-case"),
    ],
)
def test_meta_categories_are_stored_and_answered_in_lower_case(
    gateway: Runtime, twilio_content: FakeContent, meta_category, category
):
    # Given an approved template in Meta's category, as Twilio writes it
    twilio_content.contents = [content(1, approval_requests=approval("approved", meta_category))]

    # When it is synced and sent
    sync(gateway)
    status, accepted = send(by_sid(1), {"1": "Ada", "2": "A-1"})

    # Then the category is the gateway's, in lower case, in the store, the API and the send
    assert stored(gateway)[content_sid(1)].category is Category(category)
    assert list_templates()[0]["category"] == category
    assert status == 202, accepted
    assert get_message(accepted["id"])["category"] == category


def test_an_approved_template_of_a_category_the_gateway_does_not_know_is_not_sent(
    gateway: Runtime, twilio_content: FakeContent
):
    # Given Meta's category is one the gateway does not know
    twilio_content.contents = [content(1, approval_requests=approval("approved", "PROMOTIONAL"))]

    # When it is synced
    sync(gateway)

    # Then it has no category and is refused: the caller may not pick a category
    assert stored(gateway)[content_sid(1)].category is None
    assert list_templates()[0]["category"] is None
    assert_refused(send(by_sid(1), {"1": "Ada", "2": "A-1"}), "template_not_approved")


# ---------------------------------------------------------------------- placeholders


@pytest.mark.parametrize(
    ("types", "placeholders"),
    [
        pytest.param({"twilio/text": {"body": "Hi {{1}}, order {{2}}"}}, ["1", "2"], id="text"),
        pytest.param(
            {"twilio/text": {"body": "Hi {{ first_name }}, code {{code}}"}},
            ["code", "first_name"],
            id="named",
        ),
        pytest.param(CARD, ["1", "2", "3"], id="card-title-media-and-button-url"),
        pytest.param(CALL_TO_ACTION, ["1"], id="call-to-action-url-only"),
        pytest.param(
            {
                "twilio/quick-reply": {
                    "body": "Is {{1}} a good time?",
                    "actions": [{"title": "Yes", "id": "yes"}, {"title": "No", "id": "no"}],
                }
            },
            ["1"],
            id="quick-reply",
        ),
        pytest.param(
            {
                "whatsapp/authentication": {
                    "body": "{{1}} is your verification code",
                    "add_security_recommendation": True,
                    "code_expiration_minutes": 5,
                    "actions": [{"type": "COPY_CODE", "copy_code_text": "Copy code"}],
                }
            },
            ["1"],
            id="whatsapp-authentication",
        ),
        pytest.param({"twilio/text": {"body": "Thanks for your order"}}, [], id="no-placeholder"),
    ],
)
def test_placeholders_are_taken_from_every_text_of_the_content(
    gateway: Runtime, twilio_content: FakeContent, types, placeholders
):
    # Given a template whose placeholders may stand in nested texts (titles, URLs)
    twilio_content.contents = [with_fields(content(1, types=types), variables={"1": "sample"})]

    # When it is synced
    sync(gateway)

    # Then its placeholders and types are those of its content
    template = stored(gateway)[content_sid(1)]
    assert sorted(template.placeholders) == placeholders
    assert template.types == frozenset(types)
    assert list_templates()[0]["placeholders"] == placeholders
    # And a send without values is refused naming each of them, or accepted when there is none
    answer = send(by_sid(1))
    if placeholders:
        message = assert_refused(answer, "template_variables_missing")
        assert message.endswith("needs a value for: " + ", ".join(placeholders))
    else:
        assert answer[0] == 202, answer


def test_sample_variables_are_stored_but_only_placeholders_need_values(
    gateway: Runtime, twilio_content: FakeContent
):
    # Given a template using {{1}} whose samples also name variables its content does not use
    samples = {"1": "Ada", "2": "unused sample", "coupon": "FAKE-10"}
    twilio_content.contents = [
        with_fields(content(1, body="Hello {{1}}, thanks for your order"), variables=samples)
    ]

    # When it is synced
    sync(gateway)

    # Then the samples are stored and listed as they are
    assert stored(gateway)[content_sid(1)].variables == samples
    assert list_templates()[0]["variables"] == samples
    # And a send with a value for {{1}} only is accepted
    status, accepted = send(by_sid(1), {"1": "Grace"})
    assert status == 202, accepted
    # And a send without it names {{1}} alone, never the samples
    message = assert_refused(send(by_sid(1)), "template_variables_missing")
    assert message.endswith("needs a value for: 1")


# ---------------------------------------------------------------------- removed at Twilio


def test_a_template_removed_at_twilio_is_marked_deleted_announced_and_never_sent(
    gateway: Runtime,
    twilio_content: FakeContent,
    captured_events: CapturedEvents,
    template_writes: TemplateWrites,
):
    # Given three synced templates
    twilio_content.contents = [content(number) for number in (1, 2, 3)]
    sync(gateway)
    assert status_changes(captured_events) == []

    # When Twilio no longer lists one of them, at the next sync
    gateway.clock.advance(15 * 60)
    twilio_content.contents = [content(1), content(3)]
    sync(gateway)

    # Then it is marked deleted, the others kept
    assert {sid: t.deleted for sid, t in stored(gateway).items()} == {
        content_sid(1): False,
        content_sid(2): True,
        content_sid(3): False,
    }
    # And it is still listed, as deleted, last seen by the sync before
    listed = listed_by_sid()[content_sid(2)]
    assert listed["status"] == "deleted"
    assert datetime.fromisoformat(listed["last_seen_at"]) == NOW
    assert datetime.fromisoformat(listed_by_sid()[content_sid(1)]["last_seen_at"]) == (
        NOW + timedelta(minutes=15)
    )
    # And its deletion is announced once
    [change] = status_changes(captured_events)
    assert change | {"at": None} == {
        "sid": content_sid(2),
        "account_sid": TEST_ACCOUNT_SID,
        "name": "template_2",
        "language": "en",
        "status": "deleted",
        "previous_status": "approved",
        "category": "utility",
        "previous_category": "utility",
        "rejection_reason": None,
        "at": None,
    }
    assert datetime.fromisoformat(change["at"]) == NOW + timedelta(minutes=15)
    # And a send with it, by SID or by name, is refused as not found
    for reference in (by_sid(2), by_name("template_2")):
        assert_refused(send(reference, {"1": "Ada", "2": "A-1"}), "template_not_found")

    # When later syncs still do not list it, the last one comparing every template in full
    template_writes.clear()
    sync(gateway)
    forget_fingerprint()
    sync(gateway)

    # Then it is neither written nor announced again
    assert template_writes.templates == []
    assert status_changes(captured_events) == []


# ---------------------------------------------------------------------- changes


@pytest.mark.parametrize(
    ("before", "after", "change"),
    [
        pytest.param(
            approval("approved", "UTILITY"),
            approval("approved", "MARKETING"),
            ("approved", "approved", "utility", "marketing", None),
            id="category-utility-to-marketing",
        ),
        pytest.param(
            approval("approved", "MARKETING"),
            approval("paused", "MARKETING"),
            ("approved", "paused", "marketing", "marketing", None),
            id="approved-to-paused",
        ),
        pytest.param(
            approval("pending", "UTILITY"),
            approval("rejected", "UTILITY", rejection_reason="Abusive content"),
            ("pending", "rejected", "utility", "utility", "Abusive content"),
            id="pending-to-rejected",
        ),
        pytest.param(
            {},
            approval("received", "UTILITY", nested=True),
            ("unsubmitted", "received", None, "utility", None),
            id="submitted",
        ),
    ],
)
def test_a_status_or_category_change_is_announced_once(
    gateway: Runtime,
    twilio_content: FakeContent,
    captured_events: CapturedEvents,
    before,
    after,
    change,
):
    # Given a synced template, and another one that does not change
    twilio_content.contents = [content(1, approval_requests=before), content(2)]
    sync(gateway)
    assert status_changes(captured_events) == []

    # When Meta changes its status or category, and the sync runs twice
    twilio_content.contents = [content(1, approval_requests=after), content(2)]
    sync(gateway)
    sync(gateway)

    # Then one template.status_changed says what it was and what it is
    [event] = status_changes(captured_events)
    assert event["sid"] == content_sid(1)
    fields = ("previous_status", "status", "previous_category", "category", "rejection_reason")
    assert tuple(event[name] for name in fields) == change


def test_the_new_category_is_what_the_next_send_records(
    gateway: Runtime, twilio_content: FakeContent
):
    # Given an approved utility template, sent once
    twilio_content.contents = [content(1, name="order_update")]
    sync(gateway)
    _, first = send(by_name("order_update"), {"1": "Ada", "2": "A-1"})
    assert get_message(first["id"])["category"] == "utility"

    # When Meta recategorizes it as marketing and the sync runs
    twilio_content.contents = [
        content(1, name="order_update", approval_requests=approval("approved", "MARKETING"))
    ]
    sync(gateway)

    # Then the next send, by name or SID, records marketing; the first keeps utility
    for reference in (by_name("order_update"), by_sid(1)):
        status, accepted = send(reference, {"1": "Ada", "2": "A-1"})
        assert status == 202, accepted
        assert get_message(accepted["id"])["category"] == "marketing"
    assert get_message(first["id"])["category"] == "utility"


def test_a_template_paused_by_meta_is_no_longer_sent(gateway: Runtime, twilio_content: FakeContent):
    # Given an approved template
    twilio_content.contents = [content(1)]
    sync(gateway)
    assert send(by_sid(1), {"1": "Ada", "2": "A-1"})[0] == 202

    # When Meta pauses it (low quality) and the sync runs
    twilio_content.contents = [content(1, approval_requests=approval("paused", "UTILITY"))]
    sync(gateway)

    # Then it is refused as not approved, saying so
    message = assert_refused(send(by_sid(1), {"1": "Ada", "2": "A-1"}), "template_not_approved")
    assert "paused" in message


# ---------------------------------------------------------------------- a failed listing


@pytest.mark.parametrize(
    ("failure", "retryable"),
    [
        pytest.param(
            (500, {"code": 20500, "message": "Internal Server Error", "status": 500}),
            True,
            id="500",
        ),
        pytest.param(
            (401, {"code": 20003, "message": "Authenticate", "status": 401}), False, id="401"
        ),
        pytest.param(
            (429, {"code": 20429, "message": "Too Many Requests", "status": 429}),
            True,
            id="429",
        ),
    ],
)
def test_a_page_failing_midway_changes_nothing(
    gateway: Runtime,
    twilio_content: FakeContent,
    captured_events: CapturedEvents,
    template_writes: TemplateWrites,
    capsys: pytest.CaptureFixture[str],
    failure,
    retryable,
):
    # Given five synced templates, listed two a page
    twilio_content.page_size = 2
    twilio_content.contents = [content(number) for number in range(1, 6)]
    sync(gateway)
    before, listed_before = stored(gateway), list_templates()
    status_changes(captured_events)
    template_writes.clear()

    # And since then: one removed, one paused, one new; and Twilio fails the second page
    twilio_content.contents = [
        content(1),
        content(2, approval_requests=approval("paused", "UTILITY")),
        content(4),
        content(5),
        content(6),
    ]
    twilio_content.failing_pages = {1}
    twilio_content.failure = failure
    gateway.clock.advance(15 * 60)

    # When the sync runs
    with pytest.raises(TwilioCallError) as raised:
        sync(gateway)

    # Then it fails with Twilio's answer, after reading the first page only
    assert (raised.value.status, raised.value.retryable) == (failure[0], retryable)
    assert page_requests(twilio_content)[-1]["Page"] == "1"
    # And nothing already stored changed: nothing deleted, nothing written, nothing announced
    assert stored(gateway) == before
    assert not any(template.deleted for template in stored(gateway).values())
    assert list_templates() == listed_before
    assert template_writes.templates == []
    assert template_writes.markers == []
    assert status_changes(captured_events) == []

    # When the scheduled function runs into the same failure
    capsys.readouterr()
    with pytest.raises(sync_function.TemplateSyncFailedError):
        run_sync_function()

    # Then the failure is counted, and still nothing changed
    assert emitted_metrics(capsys.readouterr().out).get("TemplateSyncFailures") == 1
    assert stored(gateway) == before
    assert template_writes.templates == []


def test_twilio_not_answering_midway_changes_nothing(
    gateway: Runtime,
    twilio_content: FakeContent,
    captured_events: CapturedEvents,
    template_writes: TemplateWrites,
):
    # Given five synced templates, listed two a page
    twilio_content.page_size = 2
    twilio_content.contents = [content(number) for number in range(1, 6)]
    sync(gateway)
    before = stored(gateway)
    status_changes(captured_events)
    template_writes.clear()

    # When Twilio removes three of them, then stops answering on the second page
    twilio_content.contents = [content(1), content(2)]
    twilio_content.contents += [content(number) for number in (6, 7, 8)]
    install(gateway, UnansweredPage(twilio_content, page=1))
    with pytest.raises(TwilioCallError) as raised:
        sync(gateway)

    # Then the sync fails as worth retrying, and nothing changed
    assert (raised.value.status, raised.value.retryable) == (None, True)
    assert stored(gateway) == before
    assert template_writes.templates == []
    assert template_writes.markers == []
    assert status_changes(captured_events) == []


def test_a_failure_on_the_last_page_deletes_nothing(
    gateway: Runtime, twilio_content: FakeContent, captured_events: CapturedEvents
):
    # Given five synced templates, listed two a page
    twilio_content.page_size = 2
    twilio_content.contents = [content(number) for number in range(1, 6)]
    sync(gateway)
    status_changes(captured_events)

    # When the last page (where templates 5 is) fails
    twilio_content.failing_pages = {2}
    with pytest.raises(TwilioCallError):
        sync(gateway)

    # Then template 5, missing from the pages read, is not taken for deleted
    assert not stored(gateway)[content_sid(5)].deleted
    assert status_changes(captured_events) == []


def test_the_sync_after_a_failure_applies_every_change(
    gateway: Runtime, twilio_content: FakeContent, captured_events: CapturedEvents
):
    # Given a sync that failed midway after Twilio's templates changed
    twilio_content.page_size = 2
    twilio_content.contents = [content(number) for number in range(1, 6)]
    sync(gateway)
    status_changes(captured_events)
    twilio_content.contents = [
        content(1, approval_requests=approval("paused", "UTILITY")),
        *[content(number) for number in (2, 4, 5, 6)],
    ]
    twilio_content.failing_pages = {1}
    with pytest.raises(TwilioCallError):
        sync(gateway)

    # When Twilio answers again
    twilio_content.failing_pages = set()
    result = sync(gateway)

    # Then the removal, the pause and the new template are all applied and announced
    templates = stored(gateway)
    assert result == SyncResult(listed=5, written=3, changes=2)
    assert templates[content_sid(1)].status is ApprovalStatus.PAUSED
    assert templates[content_sid(3)].deleted
    assert content_sid(6) in templates
    assert sorted((e["sid"], e["status"]) for e in status_changes(captured_events)) == [
        (content_sid(1), "paused"),
        (content_sid(3), "deleted"),
    ]


# ---------------------------------------------------------------------- incremental


def diverse_contents() -> list[dict[str, Any]]:
    """Templates of every shape the sync parses, to round-trip through the store."""
    return [
        content(1),
        content(2, approval_requests=approval("approved", "MARKETING", nested=True)),
        content(
            3,
            approval_requests=approval("rejected", "MARKETING", rejection_reason="Too vague"),
        ),
        content(4, approval_requests={}),
        with_fields(content(5), approval_requests=None, variables=None, types=None),
        content(6, approval_requests=approval("paused", "TRANSACTIONAL")),
        content(7, approval_requests=approval("in_appeal", "UTILITY")),
        content(8, approval_requests=approval("approved", "PROMOTIONAL")),
        content(9, types=CARD),
        content(10, types=CALL_TO_ACTION, language="pt_BR"),
        content(11, types=LOCATION),
        with_fields(content(12, types=LIST_PICKER), variables={}),
        content(13, name="login_code", approval_requests=approval("approved", "AUTHENTICATION")),
    ]


@pytest.mark.parametrize("fingerprint", ["kept", "lost"])
def test_two_syncs_in_a_row_the_second_writes_nothing_and_announces_nothing(
    gateway: Runtime,
    twilio_content: FakeContent,
    captured_events: CapturedEvents,
    template_writes: TemplateWrites,
    fingerprint,
):
    # Given templates of every shape, synced once
    twilio_content.contents = diverse_contents()
    first = sync(gateway)
    assert first == SyncResult(listed=13, written=13, changes=0)
    assert sorted(template_writes.templates) == sorted(content_sid(n) for n in range(1, 14))
    status_changes(captured_events)
    template_writes.clear()
    if fingerprint == "lost":
        forget_fingerprint()

    # When the sync runs again with nothing changed at Twilio
    gateway.clock.advance(15 * 60)
    second = sync(gateway)

    # Then no template is written (only the account's sync marker) and nothing is announced
    assert second == SyncResult(listed=13, written=0, changes=0)
    assert template_writes.templates == []
    assert template_writes.calls == 0
    assert template_writes.markers == [f"sync#{TEST_ACCOUNT_SID}"]
    assert status_changes(captured_events) == []
    # And every listed template counts as seen by this sync
    assert {datetime.fromisoformat(t["last_seen_at"]) for t in list_templates()} == {
        NOW + timedelta(minutes=15)
    }


@pytest.mark.parametrize(
    ("changed", "announced"),
    [
        pytest.param(content(5), True, id="submitted-and-approved"),
        pytest.param(
            content(1, approval_requests=approval("paused", "UTILITY")), True, id="status"
        ),
        pytest.param(
            content(1, approval_requests=approval("approved", "MARKETING")), True, id="category"
        ),
        pytest.param(content(1, body="Hi {{1}}, order {{2}} is {{3}}"), False, id="body"),
        pytest.param(content(1, name="renamed_template"), False, id="friendly-name"),
        pytest.param(
            with_fields(content(1), variables={"1": "Grace", "2": "B-2002"}),
            False,
            id="samples",
        ),
        pytest.param(
            content(9, types={"twilio/card": {**CARD["twilio/card"], "title": "Order {{4}}"}}),
            False,
            id="nested-placeholder",
        ),
    ],
)
def test_changing_one_template_of_many_writes_exactly_that_one(
    gateway: Runtime,
    twilio_content: FakeContent,
    captured_events: CapturedEvents,
    template_writes: TemplateWrites,
    changed,
    announced,
):
    # Given thirteen synced templates of every shape
    twilio_content.contents = diverse_contents()
    sync(gateway)
    status_changes(captured_events)
    template_writes.clear()

    # When one of them changes at Twilio and the sync runs
    sid = changed["sid"]
    twilio_content.contents = [changed if c["sid"] == sid else c for c in diverse_contents()]
    result = sync(gateway)

    # Then exactly that template is written, in one call
    assert template_writes.templates == [sid]
    assert template_writes.calls == 1
    assert (result.written, result.changes) == (1, int(announced))
    assert stored(gateway)[sid] == ContentAndApprovals.model_validate(changed).template()
    # And only a status or category change is announced
    assert [event["sid"] for event in status_changes(captured_events)] == (
        [sid] if announced else []
    )


# ---------------------------------------------------------------------- several accounts


@pytest.fixture
def two_accounts(
    gateway: Runtime, monkeypatch: pytest.MonkeyPatch, served: list[FakeContent]
) -> dict[str, FakeContent]:
    """Two accounts in the accounts secret, each with its own Content API."""
    secret = {
        "accounts": [
            {
                "account_sid": TEST_ACCOUNT_SID,
                "auth_token": TEST_AUTH_TOKEN,
                "senders": ["whatsapp:+14155238886"],
            },
            {
                "account_sid": OTHER_ACCOUNT_SID,
                "auth_token": OTHER_AUTH_TOKEN,
                "senders": [OTHER_SENDER],
            },
        ]
    }
    arn = boto3.client("secretsmanager").create_secret(
        Name="whatsapp-gateway/twilio-accounts", SecretString=json.dumps(secret)
    )["ARN"]
    monkeypatch.setenv("TWILIO_ACCOUNTS_SECRET", arn)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    gateway.__dict__.pop("twilio_settings", None)
    fakes = {TEST_ACCOUNT_SID: FakeContent(), OTHER_ACCOUNT_SID: FakeContent()}
    served.extend(fakes.values())
    install(
        gateway,
        ContentByAccount(
            {
                (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN): fakes[TEST_ACCOUNT_SID],
                (OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN): fakes[OTHER_ACCOUNT_SID],
            }
        ),
    )
    return fakes


@pytest.mark.parametrize("failing", [TEST_ACCOUNT_SID, OTHER_ACCOUNT_SID])
def test_one_account_failing_does_not_stop_the_others(
    gateway: Runtime,
    two_accounts: dict[str, FakeContent],
    capsys: pytest.CaptureFixture[str],
    failing,
):
    # Given two accounts, each with its templates, and one whose listing fails midway
    for index, (sid, fake) in enumerate(two_accounts.items()):
        fake.page_size = 2
        fake.contents = [content(10 * index + number, account_sid=sid) for number in range(1, 6)]
    two_accounts[failing].failing_pages = {1}
    healthy = next(sid for sid in two_accounts if sid != failing)

    # When the scheduled function runs
    capsys.readouterr()
    with pytest.raises(sync_function.TemplateSyncFailedError):
        run_sync_function()

    # Then the healthy account's templates are all synced, the failing one's none
    assert len(stored(gateway, healthy)) == 5
    assert stored(gateway, failing) == {}
    assert {template["account_sid"] for template in list_templates()} == {healthy}
    # And each account's listing was read with its own credentials, to the end or the failure
    assert len(two_accounts[healthy].answers) == 3
    assert len(two_accounts[failing].requests) == 2
    # And the failure is counted
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["TemplateSyncFailures"] == 1
    assert metrics["TemplatesWritten"] == 5


def test_each_account_sends_its_own_templates(
    gateway: Runtime, two_accounts: dict[str, FakeContent]
):
    # Given a template of the same name in each account, of different categories
    two_accounts[TEST_ACCOUNT_SID].contents = [content(1, name="order_update")]
    two_accounts[OTHER_ACCOUNT_SID].contents = [
        content(
            2,
            name="order_update",
            account_sid=OTHER_ACCOUNT_SID,
            approval_requests=approval("approved", "MARKETING"),
        )
    ]

    # When the scheduled function runs
    answer = run_sync_function()

    # Then both accounts are synced
    assert answer == {"synced": {TEST_ACCOUNT_SID: 1, OTHER_ACCOUNT_SID: 1}}
    assert {t["sid"]: t["account_sid"] for t in list_templates("name=order_update")} == {
        content_sid(1): TEST_ACCOUNT_SID,
        content_sid(2): OTHER_ACCOUNT_SID,
    }
    # And a send from the other account's sender uses that account's template
    status, accepted = post_message(
        {
            "to": CONTACT,
            "from": OTHER_SENDER,
            "template": by_name("order_update"),
            "variables": {"1": "Ada", "2": "A-1"},
        }
    )
    assert status == 202, accepted
    message = get_message(accepted["id"])
    assert (message["template"]["sid"], message["category"]) == (content_sid(2), "marketing")
    # And another account's SID is not found from this one's sender
    assert_refused(send(by_sid(2), {"1": "Ada", "2": "A-1"}), "template_not_found")


# ---------------------------------------------------------------------- GET /v1/templates


@pytest.fixture
def catalogue(gateway: Runtime, twilio_content: FakeContent) -> None:
    """Five templates synced, one of which Twilio then removed."""
    twilio_content.contents = [
        content(1, name="order_update", language="en"),
        content(2, name="order_update", language="es"),
        content(3, name="Promo_Spring", approval_requests=approval("approved", "MARKETING")),
        content(4, name="login_code", approval_requests=approval("pending", "AUTHENTICATION")),
        content(5, name="old_offer", approval_requests=approval("approved", "MARKETING")),
    ]
    sync(gateway)
    twilio_content.contents = twilio_content.contents[:4]
    sync(gateway)


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", [3, 4, 5, 1, 2], id="all-sorted-by-name-language"),
        pytest.param("status=approved", [3, 1, 2], id="status"),
        pytest.param("status=deleted", [5], id="status-deleted"),
        pytest.param("category=MARKETING", [3, 5], id="category-any-case"),
        pytest.param("language=es", [2], id="language"),
        pytest.param("name=ORDER_UPDATE", [1, 2], id="name-any-case"),
        pytest.param("status=approved&category=utility&language=en", [1], id="combined"),
        pytest.param("status=rejected", [], id="no-match"),
    ],
)
def test_templates_are_listed_and_filtered(query, expected):
    # When the templates are listed with these filters
    templates = list_templates(query)

    # Then exactly the matching ones are answered, in order of name and language
    assert [template["sid"] for template in templates] == [content_sid(n) for n in expected]
    assert all(t["category"] in {"utility", "marketing", "authentication"} for t in templates)


# ---------------------------------------------------------------------- POST /v1/templates/sync


@dataclass
class RecordingTrigger:
    calls: int = 0

    def trigger(self) -> None:
        self.calls += 1


def test_a_sync_can_be_asked_for_now(gateway: Runtime, twilio_content: FakeContent):
    # Given the sync function's trigger
    trigger = RecordingTrigger()
    gateway.__dict__["template_sync"] = trigger

    # When the business asks for a sync
    event = api_event("POST", "/v1/templates/sync")
    response = api.handler(event, LambdaContext())

    # Then the sync is started, without waiting for it (Twilio is not called by the API)
    assert response["statusCode"] == 202
    assert json.loads(response["body"]) == {"status": "started"}
    assert trigger.calls == 1
    assert twilio_content.requests == []


# ---------------------------------------------------------------------- sends


@pytest.fixture
def synced_for_sends(gateway: Runtime, twilio_content: FakeContent) -> None:
    twilio_content.contents = [
        content(1, name="order_update", approval_requests=approval("approved", "MARKETING")),
        content(2, name="order_pending", approval_requests=approval("pending", "UTILITY")),
        content(3, name="pick_a_slot", types=LIST_PICKER),
    ]
    sync(gateway)


SENDS = {
    "approved": (1, "order_update", {"1": "Ada", "2": "A-1001"}),
    "pending": (2, "order_pending", {"1": "Ada", "2": "A-1001"}),
    "missing-variable": (1, "order_update", {"1": "Ada"}),
    "invalid-variable": (1, "order_update", {"1": "Ada", "2": "A-1001\nB-2"}),
    "list-picker-outside-window": (3, "pick_a_slot", {"1": "Ada"}),
    "unknown": (99, "no_such_template", {"1": "Ada"}),
}


@pytest.mark.usefixtures("synced_for_sends")
@pytest.mark.parametrize("by", ["content_sid", "name"])
@pytest.mark.parametrize(
    ("case", "outcome"),
    [
        pytest.param("approved", "marketing", id="approved"),
        pytest.param("pending", "template_not_approved", id="pending"),
        pytest.param("missing-variable", "template_variables_missing", id="missing-variable"),
        pytest.param("invalid-variable", "template_variables_invalid", id="invalid-variable"),
        pytest.param("list-picker-outside-window", "outside_service_window", id="list-picker"),
        pytest.param("unknown", "template_not_found", id="unknown"),
    ],
)
def test_a_send_follows_the_synced_template(by, case, outcome):
    # Given the synced templates, and a contact who never wrote
    number, name, variables = SENDS[case]
    reference = by_sid(number) if by == "content_sid" else by_name(name)

    # When a template is sent by SID or by name and language
    answer = send(reference, variables)

    # Then it is accepted with the category of the sync, or refused with the policy's code
    if outcome == "marketing":
        assert answer[0] == 202, answer
        message = get_message(answer[1]["id"])
        assert (message["template"]["sid"], message["category"]) == (content_sid(1), outcome)
    else:
        assert_refused(answer, outcome)


@pytest.mark.usefixtures("synced_for_sends")
@pytest.mark.parametrize("reference", [by_sid(3), by_name("pick_a_slot")], ids=["sid", "name"])
def test_a_list_picker_is_sent_inside_the_window(reference):
    # Given the contact wrote in
    open_service_window()

    # When the list-picker template is sent
    status, accepted = send(reference, {"1": "Ada"})

    # Then it is accepted, with its synced category
    assert status == 202, accepted
    assert get_message(accepted["id"])["category"] == "utility"


def test_a_name_in_another_language_is_not_found(gateway: Runtime, twilio_content: FakeContent):
    # Given a template synced in English only
    twilio_content.contents = [content(1, name="order_update", language="en")]
    sync(gateway)

    # When it is sent by name in Spanish
    answer = send(by_name("order_update", "es"), {"1": "Ada", "2": "A-1"})

    # Then no synced template matches
    assert_refused(answer, "template_not_found")


# ---------------------------------------------------------------------- Twilio's description


def test_a_content_without_a_friendly_name_is_synced(gateway: Runtime, twilio_content: FakeContent):
    # Given a template created without a friendly name (optional at creation; the listing
    # declares it nullable), beside a named one
    twilio_content.contents = [with_fields(content(1), friendly_name=None), content(2)]

    # When the sync runs
    run_sync_function()

    # Then both are synced, and the nameless one can be sent by SID
    assert set(stored(gateway)) == {content_sid(1), content_sid(2)}
    assert send(by_sid(1), {"1": "Ada", "2": "A-1"})[0] == 202


def test_the_fake_serves_pages_as_twilio_describes_them(
    content_specs_or_skip: tuple[dict[str, Any], dict[str, Any]],
    gateway: Runtime,
    twilio_content: FakeContent,
):
    v1, v2 = content_specs_or_skip
    # Given templates of every shape, listed three a page
    twilio_content.contents = diverse_contents()
    twilio_content.page_size = 3

    # When they are synced
    sync(gateway)

    # Then every page served is a ListContentAndApprovals answer of v1, its contents items of
    # the v2 listing too, and every request a declared operation with declared parameters
    assert len(twilio_content.answers) == 5
    for page in twilio_content.answers:
        assert_valid_page(v1, v2, page)
    for request in twilio_content.requests:
        assert_valid_listing_request(v1, request)


@pytest.mark.parametrize(
    ("where", "broken"),
    [
        pytest.param("content", {"sid": "MM" + "0" * 32}, id="not-a-content-sid"),
        pytest.param("content", {"date_created": "2026-11-01 10:00:00"}, id="date-without-zone"),
        pytest.param("content", {"approval_requests": ["approved"]}, id="approvals-not-object"),
        pytest.param("content", {"status": "approved"}, id="undeclared-field"),
        pytest.param("meta", {"next_page_url": "/v1/ContentAndApprovals?Page=1"}, id="relative"),
        pytest.param("meta", {"page": "0"}, id="page-not-integer"),
    ],
)
def test_the_page_check_refuses_what_twilio_would_never_answer(
    content_specs_or_skip: tuple[dict[str, Any], dict[str, Any]], where, broken
):
    v1, v2 = content_specs_or_skip
    # Given a page as the fake serves it, broken in one place
    page = FakeContent(contents=[content(1), content(2)]).page(0, 1)
    assert_valid_page(v1, v2, page)
    if where == "content":
        page["contents"][0] |= broken
    else:
        page["meta"] |= broken

    # Then the check refuses it
    with pytest.raises((ValidationError, AssertionError)):
        assert_valid_page(v1, v2, page)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"PageSize": "1001"}, id="page-size-over-twilio-max"),
        pytest.param({"Page": "-1"}, id="negative-page"),
        pytest.param({"Limit": "10"}, id="undeclared"),
    ],
)
def test_the_request_check_refuses_what_twilio_does_not_declare(
    content_specs_or_skip: tuple[dict[str, Any], dict[str, Any]], query
):
    v1, _ = content_specs_or_skip
    request = f"GET {LISTING_PATH}?{json.dumps(query)}"

    with pytest.raises((ValidationError, AssertionError)):
        assert_valid_listing_request(v1, request)
