"""Twilio's ContentAndApprovals item, read into the gateway's Template."""

from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import TEST_ACCOUNT_SID
from tests.fake_content import approval, content, content_sid
from whatsapp_gateway.domain.templates import ApprovalStatus, Template
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.models.content import ContentAndApprovals


def parse(item: dict[str, Any]) -> Template:
    return ContentAndApprovals.model_validate(item).template()


def with_types(types: dict[str, Any], number: int = 1) -> Template:
    return parse(content(number, types=types))


# --- the fields -----------------------------------------------------------------------------


def test_a_listed_template_is_read_field_by_field():
    # Given an approved utility text template as ContentAndApprovals lists it
    item = content(7, name="order_update", language="pt_BR")

    # When it is read
    template = parse(item)

    # Then every field the gateway keeps comes from it
    assert template == Template(
        sid=content_sid(7),
        account_sid=TEST_ACCOUNT_SID,
        name="order_update",
        language="pt_BR",
        status=ApprovalStatus.APPROVED,
        category=Category.UTILITY,
        types=frozenset({"twilio/text"}),
        placeholders=frozenset({"1", "2"}),
        variables={"1": "Ada", "2": "A-1001"},
        rejection_reason=None,
        deleted=False,
    )


def test_extra_fields_twilio_adds_are_ignored():
    # Given an item with fields this gateway does not know, at the top and in the approval
    item = content(1)
    item |= {"url": "https://content.twilio.com/v1/Content/x", "links": {"a": "b"}, "new": 1}
    item["approval_requests"] |= {"flagged_for_review": True, "new_field": {"x": 1}}

    # When it is read
    template = parse(item)

    # Then it reads as the same item without them
    assert template == parse(content(1))


def test_missing_optional_fields_have_defaults():
    # Given the barest item Twilio could list: only the SIDs
    item = {"sid": content_sid(1), "account_sid": TEST_ACCOUNT_SID}

    # When it is read
    template = parse(item)

    # Then it is an unsubmitted template with nothing in it
    assert template.status is ApprovalStatus.UNSUBMITTED
    assert template.category is None
    assert template.name == ""
    assert template.language == ""
    assert template.types == frozenset()
    assert template.placeholders == frozenset()
    assert template.variables == {}
    assert template.rejection_reason is None


def test_null_variables_types_and_approval_are_accepted():
    # Given an item whose nullable objects are null, as the schema allows
    item = content(1) | {"variables": None, "types": None, "approval_requests": None}

    # When it is read
    template = parse(item)

    # Then each is empty
    assert template.variables == {}
    assert template.types == frozenset()
    assert template.placeholders == frozenset()
    assert template.status is ApprovalStatus.UNSUBMITTED


def test_read_template_is_not_deleted():
    # A template Twilio lists is, by definition, not deleted
    assert parse(content(1)).deleted is False


# --- SIDs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sid",
    [
        "HX" + "0" * 31,
        "HX" + "0" * 33,
        "HX" + "g" * 32,
        "hx" + "0" * 32,
        "MG" + "0" * 32,
        "",
        " HX" + "0" * 32,
    ],
    ids=["short", "long", "not-hex", "lower-prefix", "wrong-prefix", "empty", "leading-space"],
)
def test_bad_content_sid_is_refused(sid):
    # Given an item whose SID is not HX + 32 hex digits
    item = content(1) | {"sid": sid}

    # When it is validated, Then it is refused, naming the field
    with pytest.raises(ValidationError) as error:
        ContentAndApprovals.model_validate(item)
    assert [e["loc"] for e in error.value.errors()] == [("sid",)]


def test_content_sid_hex_in_any_case_is_accepted():
    sid = "HX" + "aBcDeF0123456789" * 2
    assert parse(content(1) | {"sid": sid}).sid == sid


@pytest.mark.parametrize(
    "account_sid",
    ["AC" + "1" * 31, "AC" + "z" * 32, "HX" + "1" * 32, ""],
    ids=["short", "not-hex", "wrong-prefix", "empty"],
)
def test_bad_account_sid_is_refused(account_sid):
    # Given an item whose account SID is not AC + 32 hex digits
    item = content(1, account_sid=account_sid)

    # When it is validated, Then it is refused, naming the field
    with pytest.raises(ValidationError) as error:
        ContentAndApprovals.model_validate(item)
    assert [e["loc"] for e in error.value.errors()] == [("account_sid",)]


@pytest.mark.parametrize("field", ["sid", "account_sid"])
def test_missing_sid_is_refused(field):
    item = content(1)
    del item[field]

    with pytest.raises(ValidationError) as error:
        ContentAndApprovals.model_validate(item)
    assert [(e["loc"], e["type"]) for e in error.value.errors()] == [((field,), "missing")]


# --- the two approval shapes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category", "reason"),
    [
        ("approved", "UTILITY", ""),
        ("rejected", "MARKETING", "Too promotional for utility"),
        ("paused", "AUTHENTICATION", ""),
    ],
)
def test_flat_and_nested_approvals_give_equal_templates(status, category, reason):
    # Given the same approval flat (ContentAndApprovals) and nested under whatsapp
    # (ApprovalRequests)
    flat = content(1, approval_requests=approval(status, category, rejection_reason=reason))
    nested = content(
        1, approval_requests=approval(status, category, nested=True, rejection_reason=reason)
    )

    # When both are read
    from_flat, from_nested = parse(flat), parse(nested)

    # Then they are the same template, with the approval read from either
    assert from_flat == from_nested
    assert from_flat.status is ApprovalStatus(status)
    assert from_flat.category is Category.from_meta(category)


def test_nested_approval_is_preferred_over_other_channels():
    # Given an ApprovalRequests-shaped answer with a WhatsApp approval beside other fields
    requests = {"sid": content_sid(1), "whatsapp": approval("paused", "MARKETING")}

    # When it is read
    template = parse(content(1, approval_requests=requests))

    # Then the WhatsApp approval is the one read
    assert (template.status, template.category) == (ApprovalStatus.PAUSED, Category.MARKETING)


@pytest.mark.parametrize(
    "approval_requests",
    [
        None,
        {},
        {"whatsapp": {}},
        {"whatsapp": None},
        {"whatsapp": {"status": "", "category": "UTILITY"}},
        {"whatsapp": {"status": None, "category": "UTILITY"}},
        approval(status=""),
        {"category": "UTILITY", "name": "template"},
    ],
    ids=[
        "null",
        "empty",
        "nested-empty",
        "nested-null",
        "nested-empty-status",
        "nested-null-status",
        "flat-empty-status",
        "flat-no-status",
    ],
)
def test_no_whatsapp_approval_is_unsubmitted(approval_requests):
    # Given an item without a WhatsApp approval status, in either shape
    item = content(1)
    item["approval_requests"] = approval_requests

    # When it is read
    template = parse(item)

    # Then it is unsubmitted, never approved, with no category or reason from Meta
    assert template.status is ApprovalStatus.UNSUBMITTED
    assert template.category is None
    assert template.rejection_reason is None


# --- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(ApprovalStatus), ids=str)
@pytest.mark.parametrize(
    "spelling", [str.lower, str.upper, str.capitalize], ids=["lo", "UP", "Cap"]
)
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_each_status_in_any_case(status, spelling, nested):
    # Given Twilio's status in any case, in either shape
    item = content(1, approval_requests=approval(spelling(status.value), nested=nested))

    # When it is read, Then it is the gateway's status
    assert parse(item).status is status


@pytest.mark.parametrize("status", ["in_appeal", "APPROVED_PENDING", "approved!", "   "])
def test_unknown_status_is_pending_never_approved(status):
    # Given a status this gateway does not know (Meta adds some: in_appeal, ...)
    item = content(1, approval_requests=approval(status))

    # When it is read
    template = parse(item)

    # Then it is treated as still pending: never sendable
    assert template.status is ApprovalStatus.PENDING


def test_status_with_surrounding_spaces_is_read():
    assert parse(content(1, approval_requests=approval(" approved "))).status is (
        ApprovalStatus.APPROVED
    )


# --- categories -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "category"),
    [
        ("MARKETING", Category.MARKETING),
        ("UTILITY", Category.UTILITY),
        ("AUTHENTICATION", Category.AUTHENTICATION),
        ("TRANSACTIONAL", Category.UTILITY),
        ("marketing", Category.MARKETING),
        ("Utility", Category.UTILITY),
        ("transactional", Category.UTILITY),
        ("PROMOTIONAL", None),
        ("ACCOUNT_UPDATE", None),
        ("", None),
        (None, None),
    ],
    ids=str,
)
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_categories(meta, category, nested):
    # Given Meta's category of an approved template, in either shape
    item = content(1, approval_requests=approval("approved", meta, nested=nested))

    # When it is read, Then it is the gateway's category (legacy TRANSACTIONAL is utility; one
    # this gateway does not know is none, which leaves the template unsendable)
    assert parse(item).category is category


def test_service_is_not_a_template_category():
    # Given an approved template that Twilio reports with the conversation category SERVICE
    item = content(1, approval_requests=approval("approved", "SERVICE"))

    # When it is read
    template = parse(item)

    # Then it has no category the gateway knows for templates (MARKETING, UTILITY,
    # AUTHENTICATION), and so cannot be sent: a template never opens a service conversation
    assert template.category is None


# --- rejection reason -----------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_rejection_reason_is_kept(nested):
    reason = "The template contains potentially abusive or threatening content"
    item = content(
        1, approval_requests=approval("rejected", rejection_reason=reason, nested=nested)
    )

    template = parse(item)

    assert template.status is ApprovalStatus.REJECTED
    assert template.rejection_reason == reason


@pytest.mark.parametrize("reason", ["", None], ids=["empty", "null"])
def test_no_rejection_reason_is_none(reason):
    # Given an approval whose reason Twilio sends as an empty string (or null)
    requests = approval("approved")
    requests["rejection_reason"] = reason

    # When it is read, Then there is no reason
    assert parse(content(1, approval_requests=requests)).rejection_reason is None


# --- placeholders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "placeholders"),
    [
        ({"twilio/text": {"body": "Hi {{1}}, order {{2}} shipped"}}, {"1", "2"}),
        ({"twilio/text": {"body": "No placeholders"}}, set()),
        (
            {
                "twilio/card": {
                    "title": "Order {{1}}",
                    "subtitle": "Arrives {{2}}",
                    "actions": [
                        {"type": "URL", "title": "Track", "url": "https://example.com/t/{{3}}"},
                        {"type": "PHONE_NUMBER", "title": "Call", "phone": "+15005550006"},
                    ],
                }
            },
            {"1", "2", "3"},
        ),
        (
            {
                "twilio/quick-reply": {
                    "body": "Confirm {{1}}?",
                    "actions": [{"title": "Yes {{2}}", "id": "yes"}, {"title": "No", "id": "no"}],
                }
            },
            {"1", "2"},
        ),
        (
            {
                "twilio/list-picker": {
                    "body": "Pick one, {{1}}",
                    "button": "Options",
                    "items": [
                        {"item": "Red", "id": "red", "description": "In {{2}}"},
                        {"item": "{{3}}", "id": "other", "description": ""},
                    ],
                }
            },
            {"1", "2", "3"},
        ),
        (
            {
                "whatsapp/card": {
                    "body": "Hello {{1}}",
                    "footer": "Sent by {{2}}",
                    "media": ["https://example.com/{{3}}.png"],
                    "header_text": "Hi",
                    "actions": [{"type": "URL", "title": "Open", "url": "https://x.test/{{4}}"}],
                }
            },
            {"1", "2", "3", "4"},
        ),
        (
            {"twilio/media": {"body": "Your invoice", "media": ["https://example.com/{{1}}.pdf"]}},
            {"1"},
        ),
        (
            {"twilio/text": {"body": "Hi {{first_name}}, see {{order_id}}"}},
            {"first_name", "order_id"},
        ),
        ({"twilio/text": {"body": "Hi {{ 1 }}, order {{  2}}"}}, {"1", "2"}),
        ({"twilio/text": {"body": "{{1}} and {{1}} again"}}, {"1"}),
    ],
    ids=[
        "text",
        "text-none",
        "card-title-subtitle-url",
        "quick-reply",
        "list-picker-items",
        "whatsapp-card",
        "media-url",
        "named",
        "spaces",
        "repeated",
    ],
)
def test_placeholders_from_every_text_of_the_content(types, placeholders):
    # Given a content with placeholders in its texts, When it is read
    template = with_types(types)

    # Then every placeholder the content uses is found
    assert template.placeholders == frozenset(placeholders)


def test_placeholders_are_gathered_across_every_type():
    # Given a content with a text fallback and a card, each using some placeholders
    types = {
        "twilio/text": {"body": "Hi {{1}}"},
        "twilio/card": {"title": "{{name}}", "actions": [{"url": "https://x.test/{{2}}"}]},
    }

    # When it is read, Then its placeholders are those of both
    assert with_types(types).placeholders == frozenset({"1", "2", "name"})


def test_non_text_values_and_keys_are_not_placeholders():
    # Given a content whose keys look like placeholders and whose other values are not text
    types = {
        "twilio/card": {
            "title": "Your code",
            "subtitle_visible": True,
            "expiration_minutes": 5,
            "{{9}}": "plain",
            "actions": [{"type": "COPY_CODE", "copy_code_text": "Copy code"}],
        }
    }

    # When it is read, Then no placeholder is found
    assert with_types(types).placeholders == frozenset()


def test_an_authentication_template_needs_its_code_as_variable_1():
    # Given an authentication template: WhatsApp writes its body, no placeholder in sight
    types = {
        "whatsapp/authentication": {
            "add_security_recommendation": True,
            "code_expiration_minutes": 5,
            "actions": [{"type": "COPY_CODE", "copy_code_text": "Copy code"}],
        }
    }

    # When it is read, Then the one-time code is still a value the caller must give
    assert with_types(types).placeholders == frozenset({"1"})


# --- types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "session_only"),
    [
        ({"twilio/list-picker": {"body": "Pick", "button": "Go", "items": []}}, True),
        ({"twilio/location": {"latitude": 1.0, "longitude": 2.0}}, True),
        ({"twilio/text": {"body": "Hi"}}, False),
        ({"twilio/list-picker": {"body": "Pick"}, "twilio/text": {"body": "Pick"}}, False),
        ({}, False),
    ],
    ids=["list-picker-only", "location-only", "text", "list-picker-with-text", "none"],
)
def test_types_are_the_keys_and_session_only_follows(types, session_only):
    # Given a content with some types, When it is read
    template = with_types(types)

    # Then its types are the keys, and it is session-only only when every type needs the CSW
    assert template.types == frozenset(types)
    assert template.session_only is session_only


def test_every_content_type_is_kept():
    # Given a content with many types at once
    names = [
        "twilio/text",
        "twilio/media",
        "twilio/quick-reply",
        "twilio/call-to-action",
        "twilio/card",
        "twilio/list-picker",
        "whatsapp/card",
        "whatsapp/authentication",
        "twilio/some-future-type",
    ]

    # When it is read, Then every type is kept, unknown ones too
    assert with_types({name: {} for name in names}).types == frozenset(names)


# --- variables ------------------------------------------------------------------------------


def test_variables_are_kept_as_strings():
    # Given an item with sample values for its variables
    item = content(1) | {"variables": {"1": "Ada", "2": "A-1001", "name": ""}}

    # When it is read, Then they are kept as given
    variables = parse(item).variables
    assert variables == {"1": "Ada", "2": "A-1001", "name": ""}
    assert all(isinstance(value, str) for value in variables.values())


def test_numeric_variable_samples_are_kept_as_strings():
    # Given an item whose sample values Twilio gives as JSON numbers (the schema types
    # variables as a free-form object)
    item = content(1) | {"variables": {"1": 42, "2": 3.5}}

    # When it is read, Then the samples are kept as strings
    assert parse(item).variables == {"1": "42", "2": "3.5"}
