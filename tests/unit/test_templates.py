"""Templates: placeholders, the caller's variables, and session-only content types."""

import pytest

from whatsapp_gateway.domain.templates import (
    MAX_VARIABLE_LENGTH,
    ApprovalStatus,
    Template,
    invalid_variables,
    missing_variables,
    placeholders_in,
)
from whatsapp_gateway.domain.windows import Category


def template(placeholders: frozenset[str] = frozenset(), types: frozenset[str] = frozenset()):
    return Template(
        sid="HX" + "0" * 32,
        name="order_update",
        language="en",
        status=ApprovalStatus.APPROVED,
        category=Category.UTILITY,
        types=types,
        placeholders=placeholders,
    )


# --- placeholders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "names"),
    [
        (["Hi {{1}}, order {{ 2 }} has shipped"], {"1", "2"}),
        (["Hello {{first_name}}, {{1}}", "Track: https://example.com/{{1}}"], {"first_name", "1"}),
        (["No placeholders here"], set()),
    ],
    ids=["numbered", "named-and-repeated-across-texts", "none"],
)
def test_placeholders_in(texts, names):
    assert placeholders_in(texts) == frozenset(names)


def test_placeholders_in_ignores_what_is_not_a_placeholder():
    assert placeholders_in(["{1}", "{{}}", "{{first name}}", "{{a-b}}"]) == frozenset()


# --- missing variables ----------------------------------------------------------------------


def test_no_variable_missing_when_every_placeholder_has_a_value():
    # Given a template using {{1}} and {{name}}, and a caller giving both plus an extra one
    needs = template(placeholders=frozenset({"1", "name"}))

    # Then nothing is missing (an unused value is not an error here)
    assert missing_variables(needs, {"1": "42", "name": "Ana", "extra": "x"}) == []


def test_missing_variables_are_listed_in_natural_order():
    # Given a template with numbered and named placeholders
    needs = template(placeholders=frozenset({"1", "2", "10", "name", "city"}))

    # When the caller gives only {{1}}
    missing = missing_variables(needs, {"1": "42"})

    # Then the others are missing, numbers first in numeric order, then names
    assert missing == ["2", "10", "city", "name"]


@pytest.mark.parametrize(
    "name",
    ["\u00b2", "\u0665", "\uff11", "\u2460"],
    ids=["superscript-two", "arabic-indic-five", "fullwidth-one", "circled-one"],
)
def test_a_name_of_non_ascii_digits_is_sorted_as_a_name_not_a_number(name):
    # Given a variable whose name Python calls a digit but int() cannot read (or reads as
    # another number than the template's {{5}})
    variables = {name: "", "2": "\n", "10": "a\tb"}

    # Then it is listed after the numbers, as a name, and nothing raises
    assert invalid_variables(variables) == ["2", "10", name]
    assert missing_variables(template(placeholders=frozenset({name, "1"})), {}) == ["1", name]


# --- invalid variables ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "line one\nline two",
        "a\tb",
        "a     b",  # five consecutive spaces
        " ",
        "x" * (MAX_VARIABLE_LENGTH + 1),
    ],
    ids=["empty", "newline", "tab", "5-spaces", "blank", "1601-chars"],
)
def test_invalid_variable_values(value):
    assert invalid_variables({"1": value}) == ["1"]


@pytest.mark.parametrize(
    "value",
    ["a    b", "x" * 1600],
    ids=["4-spaces", "exactly-1600-chars"],
)
def test_valid_variable_values_at_the_limits(value):
    assert invalid_variables({"1": value}) == []


def test_invalid_variables_are_listed_in_natural_order():
    variables = {"name": "", "10": "a\tb", "2": "\n", "1": "fine"}

    assert invalid_variables(variables) == ["2", "10", "name"]


# --- session-only content types -------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "session_only"),
    [
        ({"twilio/list-picker"}, True),
        ({"twilio/location"}, True),
        ({"twilio/text"}, False),
        ({"twilio/list-picker", "twilio/text"}, False),
        (set(), False),
    ],
    ids=["list-picker", "location", "text", "list-picker-and-text", "no-types"],
)
def test_session_only(types, session_only):
    assert template(types=frozenset(types)).session_only is session_only
