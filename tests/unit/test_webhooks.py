"""Reading a Twilio webhook before anything is stored: the form bounded before its signature is
checked, and the signature checked as twilio's RequestValidator does, in time linear in the
form."""

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from twilio.request_validator import RequestValidator

from whatsapp_gateway import webhooks
from whatsapp_gateway.errors import ApiError
from whatsapp_gateway.webhooks import MAX_FORM_BYTES, MAX_FORM_FIELDS, TwilioForm, read_form

# twilio-python's own test vectors (tests/unit/test_request_validator.py).
GOLDEN_TOKEN = "12345"
GOLDEN_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
GOLDEN_FORM = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]
GOLDEN_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
GOLDEN_REPEATED_FORM = [
    ("Sid", "CA123"),
    ("SidAccount", "AC123"),
    ("Digits", "5678"),
    ("Digits", "1234"),
]
GOLDEN_REPEATED_SIGNATURE = "IK+Dwps556ElfBT0I3Rgjkr1wJU="


class CountingPairs:
    """Form pairs that count how many of them were read, however often they are walked."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self.read = 0

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for pair in self._pairs:
            self.read += 1
            yield pair

    def __len__(self) -> int:
        return len(self._pairs)


def form_event(body: str, *, base64_body: bool = True) -> APIGatewayProxyEventV2:
    return APIGatewayProxyEventV2(
        {
            "headers": {"content-type": "application/x-www-form-urlencoded"},
            "isBase64Encoded": base64_body,
            "body": base64.b64encode(body.encode()).decode() if base64_body else body,
        }
    )


@pytest.fixture
def parsing_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding or parsing the body fails the test: a refusal must come before either."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("the body was decoded or parsed")

    monkeypatch.setattr(webhooks, "parse_qsl", forbidden)
    monkeypatch.setattr(APIGatewayProxyEventV2, "decoded_body", property(forbidden))


# ---------------------------------------------------------------------- the signature


@pytest.mark.parametrize(
    ("pairs", "signature"),
    [
        pytest.param(GOLDEN_FORM, GOLDEN_SIGNATURE, id="single-values"),
        pytest.param(GOLDEN_REPEATED_FORM, GOLDEN_REPEATED_SIGNATURE, id="repeated-field"),
    ],
)
def test_the_form_signs_as_twilios_golden_vectors(pairs, signature):
    validator = RequestValidator(GOLDEN_TOKEN)

    # Given the form as received, repeated fields included, the validator finds the signature
    assert validator.validate(GOLDEN_URL, TwilioForm(pairs), signature)
    # and a single value changed breaks it
    tampered = [(name, value + "0" if name == "Digits" else value) for name, value in pairs]
    assert not validator.validate(GOLDEN_URL, TwilioForm(tampered), signature)


def test_a_form_with_many_repeated_fields_signs_like_the_same_values_given_at_once():
    # Given a form with 200 values of one field, in no order, and some fields blank
    pairs = [("ButtonPayload", f"choice-{i:03}") for i in range(200, 0, -1)]
    pairs += [("Body", ""), ("AccountSid", "AC" + "1" * 32)]
    validator = RequestValidator(GOLDEN_TOKEN)

    # When twilio's validator signs it as a form and as its reference multi-dict (every value
    # of a field in one list: what Django's QueryDict gives it)
    as_form = validator.compute_signature(GOLDEN_URL, TwilioForm(pairs))
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)

    class QueryDict(dict[str, list[str]]):
        def getlist(self, name: str) -> list[str]:
            return self[name]

    # Then both sign the same
    assert as_form == validator.compute_signature(GOLDEN_URL, QueryDict(grouped))


def test_checking_a_signature_reads_each_field_once_however_many_there_are():
    # Given a form of MAX_FORM_FIELDS distinct fields (quadratic work would read it 2n times)
    pairs = CountingPairs([(f"Field{i}", "x") for i in range(MAX_FORM_FIELDS)])

    # When twilio's validator checks a signature against it (twice: with and without port)
    form = TwilioForm(pairs)
    RequestValidator(GOLDEN_TOKEN).validate(GOLDEN_URL, form, "bm90IGEgc2lnbmF0dXJl")
    form.fields()

    # Then each pair was read once in all: the form is indexed when it is built
    assert pairs.read == MAX_FORM_FIELDS


def test_the_fields_keep_the_first_value_and_the_order_received():
    form = TwilioForm([("To", "a"), ("From", "b"), ("To", "c"), ("Body", "")])

    assert form.fields() == {"To": "a", "From": "b", "Body": ""}
    assert list(form) == ["To", "From", "Body"]
    assert form.getlist("To") == ["a", "c"]
    assert form.getlist("Missing") == []


# ---------------------------------------------------------------------- bounds before the check


@pytest.mark.parametrize("base64_body", [True, False], ids=["base64", "plain"])
def test_a_form_of_the_largest_size_and_field_count_is_read(base64_body):
    # Given a form exactly at both limits
    head = "&".join(f"f{i:03}=" for i in range(MAX_FORM_FIELDS - 1)) + "&Body="
    body = head + "x" * (MAX_FORM_BYTES - len(head))

    # Then it is read in full
    form = read_form(form_event(body, base64_body=base64_body))
    assert len(form.fields()) == MAX_FORM_FIELDS


@pytest.mark.parametrize("base64_body", [True, False], ids=["base64", "plain"])
@pytest.mark.usefixtures("parsing_forbidden")
def test_a_body_over_the_size_limit_is_refused_413_before_it_is_decoded(base64_body):
    # Given a forged webhook of 20,000 fields in 1 MB
    body = "&".join(f"F{i}={'x' * 45}" for i in range(20_000))
    assert len(body) > 1_000_000

    # When it is read: refused on its length alone
    with pytest.raises(ApiError) as refused:
        read_form(form_event(body, base64_body=base64_body))

    assert (refused.value.status, refused.value.code) == (413, "payload_too_large")


@pytest.mark.parametrize("base64_body", [True, False], ids=["base64", "plain"])
def test_one_byte_over_the_size_limit_is_refused(base64_body):
    body = "Body=" + "x" * (MAX_FORM_BYTES - len("Body=") + 1)

    with pytest.raises(ApiError) as refused:
        read_form(form_event(body, base64_body=base64_body))

    assert refused.value.status == 413


def test_too_many_fields_within_the_size_limit_are_refused_400_before_parsing(
    monkeypatch: pytest.MonkeyPatch,
):
    # Given 20,000 empty fields: 60 KB, within the size limit
    body = "&".join(["a="] * 20_000)
    assert len(body) <= MAX_FORM_BYTES

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("the body was parsed")

    monkeypatch.setattr(webhooks, "parse_qsl", forbidden)

    with pytest.raises(ApiError) as refused:
        read_form(form_event(body))

    assert (refused.value.status, refused.value.code) == (400, "too_many_fields")


def test_one_field_over_the_limit_is_refused():
    body = urlencode([(f"f{i}", "") for i in range(MAX_FORM_FIELDS + 1)])

    with pytest.raises(ApiError) as refused:
        read_form(form_event(body))

    assert refused.value.code == "too_many_fields"
