"""The send policy: each PolicyCode in the situation that raises it."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from whatsapp_gateway.domain.policy import (
    Allowed,
    FreeForm,
    PolicyCode,
    PolicyViolationError,
    TemplateSend,
    check_send,
)
from whatsapp_gateway.domain.templates import ApprovalStatus, Template
from whatsapp_gateway.domain.windows import Category, ContactState, service_window_after

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
SECOND = timedelta(seconds=1)

WINDOW_OPEN = ContactState(service_window=service_window_after(NOW - timedelta(hours=1)))
WINDOW_EXPIRED = ContactState(service_window=service_window_after(NOW - DAY))
NO_WINDOW = ContactState()

APPROVED = Template(
    sid="HX" + "0" * 32,
    name="order_update",
    language="en",
    status=ApprovalStatus.APPROVED,
    category=Category.UTILITY,
    types=frozenset({"twilio/text"}),
    placeholders=frozenset({"1"}),
)
LIST_PICKER = replace(APPROVED, name="menu", types=frozenset({"twilio/list-picker"}))


def send(
    template: Template | None = APPROVED, variables: dict[str, str] | None = None
) -> TemplateSend:
    return TemplateSend(
        template=template,
        requested="order_update (en)",
        variables={"1": "42"} if variables is None else variables,
    )


def refusal(content: FreeForm | TemplateSend, state: ContactState, *, known: bool = True):
    with pytest.raises(PolicyViolationError) as raised:
        check_send(content, sender_known=known, state=state, now=NOW)
    return raised.value


# --- every code, each in its situation ------------------------------------------------------

CASES = [
    pytest.param(FreeForm(), WINDOW_OPEN, False, PolicyCode.UNKNOWN_SENDER, id="unknown-sender"),
    pytest.param(
        FreeForm(), WINDOW_EXPIRED, True, PolicyCode.OUTSIDE_SERVICE_WINDOW, id="free-form-late"
    ),
    pytest.param(
        send(template=None), NO_WINDOW, True, PolicyCode.TEMPLATE_NOT_FOUND, id="not-synced"
    ),
    pytest.param(
        send(replace(APPROVED, status=ApprovalStatus.PENDING)),
        NO_WINDOW,
        True,
        PolicyCode.TEMPLATE_NOT_APPROVED,
        id="pending",
    ),
    pytest.param(
        TemplateSend(template=APPROVED, requested="order_update"),
        NO_WINDOW,
        True,
        PolicyCode.TEMPLATE_VARIABLES_MISSING,
        id="no-variables",
    ),
    pytest.param(
        send(variables={"1": "a\nb"}),
        NO_WINDOW,
        True,
        PolicyCode.TEMPLATE_VARIABLES_INVALID,
        id="multi-line-variable",
    ),
    pytest.param(
        send(),
        replace(NO_WINDOW, opted_out=True),
        True,
        PolicyCode.CONTACT_OPTED_OUT,
        id="opted-out",
    ),
]


@pytest.mark.parametrize(("content", "state", "known", "code"), CASES)
def test_each_policy_code_in_its_situation(content, state, known, code):
    error = refusal(content, state, known=known)

    assert error.code is code
    assert error.message == str(error)
    assert error.message


def test_every_policy_code_has_a_situation():
    assert {case.values[3] for case in CASES} == set(PolicyCode)


# --- unknown sender -------------------------------------------------------------------------


def test_unknown_sender_is_refused_before_any_template_rule():
    # Given a sender this gateway does not serve, and a template that breaks other rules too
    content = send(template=None)

    # Then the send is refused for the sender first
    error = refusal(content, replace(WINDOW_OPEN, opted_out=True), known=False)
    assert error.code is PolicyCode.UNKNOWN_SENDER


# --- free-form and the customer service window ----------------------------------------------


@pytest.mark.parametrize(
    ("last_inbound_ago", "allowed"),
    [(timedelta(0), True), (DAY - SECOND, True), (DAY, False), (DAY + SECOND, False)],
    ids=["just-now", "24h-minus-1s-ago", "exactly-24h-ago", "24h-plus-1s-ago"],
)
def test_free_form_only_inside_the_service_window(last_inbound_ago, allowed):
    # Given a contact whose last message was some time ago
    state = ContactState(service_window=service_window_after(NOW - last_inbound_ago))

    # Then a free-form reply is a service message inside 24 hours, refused after
    if allowed:
        assert check_send(FreeForm(), sender_known=True, state=state, now=NOW) == Allowed(
            Category.SERVICE
        )
    else:
        assert refusal(FreeForm(), state).code is PolicyCode.OUTSIDE_SERVICE_WINDOW


def test_free_form_allowed_inside_the_window_for_an_opted_out_contact():
    # Given a contact who opted out and then wrote again
    state = replace(WINDOW_OPEN, opted_out=True)

    # Then replying inside the window is not a business-initiated message
    assert check_send(FreeForm(), sender_known=True, state=state, now=NOW) == Allowed(
        Category.SERVICE
    )


def test_free_form_outside_the_window_for_an_opted_out_contact_is_outside_window():
    state = replace(NO_WINDOW, opted_out=True)

    assert refusal(FreeForm(), state).code is PolicyCode.OUTSIDE_SERVICE_WINDOW


# --- templates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "category", [Category.MARKETING, Category.UTILITY, Category.AUTHENTICATION]
)
def test_approved_template_allowed_outside_the_window_with_its_own_category(category):
    # Given an approved template whose category Meta decided
    content = send(replace(APPROVED, category=category))

    # Then it may open a conversation, charged in the template's category
    assert check_send(content, sender_known=True, state=NO_WINDOW, now=NOW) == Allowed(category)


def test_deleted_template_is_not_found():
    error = refusal(send(replace(APPROVED, deleted=True)), WINDOW_OPEN)

    assert error.code is PolicyCode.TEMPLATE_NOT_FOUND
    assert "order_update (en)" in error.message


def test_every_status_but_approved_is_refused():
    not_approved = [s for s in ApprovalStatus if s is not ApprovalStatus.APPROVED]
    for status in not_approved:
        error = refusal(send(replace(APPROVED, status=status)), WINDOW_OPEN)

        assert error.code is PolicyCode.TEMPLATE_NOT_APPROVED
        assert status.value in error.message


def test_approved_template_without_category_is_refused_as_not_approved():
    # An approved template always has Meta's category; a missing one is a sync defect.
    error = refusal(send(replace(APPROVED, category=None)), WINDOW_OPEN)

    assert error.code is PolicyCode.TEMPLATE_NOT_APPROVED


def test_missing_variables_are_named():
    # Given a template using {{1}}, {{2}} and {{name}}
    needs = replace(APPROVED, placeholders=frozenset({"1", "2", "name"}))

    # When the caller gives only {{2}}
    error = refusal(send(needs, {"2": "x"}), WINDOW_OPEN)

    # Then the send is refused, naming what is missing
    assert error.code is PolicyCode.TEMPLATE_VARIABLES_MISSING
    assert error.message.endswith("1, name")


@pytest.mark.parametrize("state", [NO_WINDOW, WINDOW_OPEN], ids=["window-closed", "window-open"])
def test_templates_refused_for_an_opted_out_contact(state):
    error = refusal(send(), replace(state, opted_out=True))

    assert error.code is PolicyCode.CONTACT_OPTED_OUT


def test_session_only_template_refused_outside_the_window():
    error = refusal(send(LIST_PICKER), WINDOW_EXPIRED)

    assert error.code is PolicyCode.OUTSIDE_SERVICE_WINDOW
    assert "twilio/list-picker" in error.message


def test_session_only_template_allowed_inside_the_window():
    allowed = check_send(send(LIST_PICKER), sender_known=True, state=WINDOW_OPEN, now=NOW)

    assert allowed == Allowed(Category.UTILITY)
