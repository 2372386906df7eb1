"""Checks of what the code sends to Twilio, and of what the fakes answer in Twilio's place,
against Twilio's own OpenAPI description of the 2010 API
(``../shared/twilio-oai/twilio_api_v2010.json``): used by the contract tests, and by the fake
Twilio of every integration test, so that every request the code sends is checked."""

import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft4Validator, FormatChecker  # type: ignore[import-untyped]

from tests.fake_twilio import SentRequest

# The repository, then shared/ beside it, as CI and the developers lay them out.
TWILIO_OAI = Path(__file__).resolve().parents[1].parent / "shared" / "twilio-oai"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
FORM = "application/x-www-form-urlencoded"

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


@cache
def load_spec() -> dict[str, Any] | None:
    """Twilio's description of the 2010 API, with OpenAPI 3.0's ``nullable`` written as JSON
    Schema (a ``null`` type); None when the shared folder is not beside the repository."""
    if not TWILIO_OAI.is_dir():
        return None
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


def validate_schema(
    spec: dict[str, Any], schema: dict[str, Any], instance: Any, formats: FormatChecker
) -> None:
    """Validates with every ``$ref`` resolved within the document."""
    Draft4Validator({**schema, "components": spec["components"]}, format_checker=formats).validate(
        instance
    )


def operation_of(spec: dict[str, Any], method: str) -> dict[str, Any]:
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
        validate_schema(spec, schema, value, REQUEST_FORMATS)


def assert_valid_create(spec: dict[str, Any], request: SentRequest) -> None:
    """A Messages create request as Twilio's description declares it."""
    operation = operation_of(spec, "post")
    assert request.method == "POST"
    path = _path_parameters(request, spec)
    _check_parameters(spec, operation, "path", {name: [v] for name, v in path.items()})
    assert request.headers["Content-Type"] == FORM
    assert FORM in operation["requestBody"]["content"]
    # HTTP basic, as declared, as the account the path names
    assert request.auth is not None
    assert request.auth[0] == path["AccountSid"]

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
    validate_schema(spec, schema, instance, REQUEST_FORMATS)
    # Twilio's own "one of" groups: a sender, and some content.
    for group in operation["x-twilio"]["conditional"]:
        assert {_pascal(name) for name in group} & form.keys(), f"none of {group}"
    # Beyond the description: Twilio refuses (21656) variables that are not a JSON object of
    # strings.
    if "ContentVariables" in form:
        variables = json.loads(form["ContentVariables"][0])
        assert isinstance(variables, dict)
        assert all(isinstance(value, str) for value in variables.values())


def assert_valid_list(spec: dict[str, Any], request: SentRequest) -> None:
    """A Messages list request as Twilio's description declares it."""
    operation = operation_of(spec, "get")
    assert request.method == "GET"
    path = _path_parameters(request, spec)
    _check_parameters(spec, operation, "path", {name: [v] for name, v in path.items()})
    query = {**parse_qs(urlsplit(request.url).query), **request.query()}
    _check_parameters(spec, operation, "query", query)
    assert request.auth is not None
    assert request.auth[0] == path["AccountSid"]


def assert_valid_request(spec: dict[str, Any], request: SentRequest) -> None:
    """A request to the Messages API (create or list), as declared."""
    if request.method == "POST":
        assert_valid_create(spec, request)
    else:
        assert_valid_list(spec, request)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
