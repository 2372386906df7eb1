"""Schemathesis, a fuzzer the project did not write, against the local stack over HTTP: every
/v1 route of docs/openapi.json (its coverage cases, then a fixed number of generated examples a
route, from a fixed seed). Whatever it sends, the API answers no 5xx, every error in the
contract's shape, and only the statuses, content types and bodies the document declares."""

from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.openapi import DOCUMENT
from tests.e2e.conftest import SENDER, Gateway
from tests.e2e.steps import templates_synced

SEED = 20261202
EXAMPLES_PER_ROUTE = 40
# Twilio's test numbers, in both spellings the API takes: generated text is almost never a
# valid number, so part of the sends and lookups use these instead.
CONTACTS = ("+15005550006", "whatsapp:+15005550009", "+447700900123")
# The stand-in's synced templates (infra/local/twilio_standin.py): approved, approved, pending.
TEMPLATES = (
    {"content_sid": f"HX{1:032x}"},
    {"name": "spring_sale", "language": "en"},
    {"content_sid": f"HX{3:032x}"},
)

schema = schemathesis.openapi.from_path(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": EXAMPLES_PER_ROUTE,
                "deterministic": True,
                # No example database: a run depends on the seed and the code, nothing else.
                "database": "none",
            },
            # Requests with a method no route has: those an HTTP API accepts (TRACE and QUERY
            # are not among them, so what AWS does with them is not the gateway's to test).
            "phases": {
                "coverage": {
                    "unexpected-methods": ["get", "put", "post", "delete", "options", "patch"]
                }
            },
            # Each of these starts a template sync: a few show it answers, no more are needed.
            "operations": [
                {"include-path": "/v1/templates/sync", "generation": {"max-examples": 5}}
            ],
        }
    ),
)


@schemathesis.check
def error_in_the_contract_shape(
    ctx: schemathesis.CheckContext,
    response: schemathesis.Response,
    case: schemathesis.Case[Any],
) -> bool | None:
    """Every error answer is ``{"error": {"code": str, "message": str}}`` (DESIGN.md)."""
    if response.status_code < 400:
        return None
    if case.method.upper() != case.operation.method.upper():
        # A method no route has: API Gateway's own 404 {"message": "Not Found"} (an HTTP API's
        # answers cannot be reshaped); the function never sees the request.
        return None
    try:
        error = response.json()["error"]
        fields = set(error)
    except (ValueError, KeyError, TypeError) as failure:
        raise AssertionError(
            f"not the contract's error shape: {response.text[:200]!r}"
        ) from failure
    assert fields == {"code", "message"}, response.text
    assert isinstance(error["code"], str), response.text
    assert isinstance(error["message"], str), response.text
    return True


# Template variables named with digits of any script, not only ASCII (superscript two, circled
# one, Arabic-Indic three are digits to str.isdigit); values blank or not.
variable_names = st.sampled_from(["1", "2", "name", "\u00b2", "\u2460", "\u0663"]) | st.characters(
    categories=["Nd", "No"]
)
variable_values = st.sampled_from(["", " "]) | st.text(max_size=20)


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Besides the generated body (almost always refused as malformed), a send to a real
    contact with the generated text, or of a synced template with generated values: these go
    on to the WhatsApp rules, the stores and the queue."""
    if context.operation is None or context.operation.label != "POST /v1/messages":
        return st.just(body)
    if not isinstance(body, dict):
        return st.just(body)
    text = body.get("body") if isinstance(body.get("body"), str) else "Hi"
    contacts = st.sampled_from(CONTACTS)
    free_form = contacts.map(lambda to: {"to": to, "body": text})
    template = st.fixed_dictionaries(
        {
            "to": contacts,
            "from": st.just(SENDER),
            "template": st.sampled_from(TEMPLATES),
            "variables": st.builds(
                lambda first, others: {"1": first} | others,
                st.text(min_size=1, max_size=20),
                st.dictionaries(variable_names, variable_values, max_size=2),
            ),
        }
    )
    return st.one_of(st.just(body), free_form, template)


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Besides the generated contact, a real one: its windows are looked up, not refused."""
    if not path_parameters or "contact" not in path_parameters:
        return st.just(path_parameters)
    return st.sampled_from((path_parameters["contact"], *CONTACTS)).map(
        lambda contact: path_parameters | {"contact": contact}
    )


@pytest.fixture(scope="module")
def stack(gateway: Gateway) -> Gateway:
    """The session's stack, once its start-up sync has stored the stand-in's templates."""
    templates_synced(gateway)
    return gateway


@schema.parametrize()
def test_the_api_answers_no_5xx_and_every_error_in_the_contract_shape(
    case: schemathesis.Case[Any], stack: Gateway
) -> None:
    case.call_and_validate(
        base_url=stack.url,
        checks=[
            not_a_server_error,
            error_in_the_contract_shape,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
