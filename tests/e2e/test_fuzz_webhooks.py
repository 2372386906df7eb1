"""The two Twilio webhooks fuzzed over HTTP with correctly signed, generated forms: Twilio-like
fields with valid and invalid values, unicode bodies, extra and repeated fields. A fixed number
of examples from a fixed seed. Whatever the form, the answer is no 5xx, and every error but the
signature's 403 is in the contract's JSON shape."""

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, SENDER, Gateway
from tests.e2e.steps import FORM, INBOUND, STATUS, order_update, templates_synced, wait_status

SEED = 20261202
EXAMPLES_PER_WEBHOOK = 100
FUZZ = settings(
    max_examples=EXAMPLES_PER_WEBHOOK,
    derandomize=True,
    database=None,
    deadline=None,
    # One stack for the session: an example is a request to it, not a fresh fixture.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
Form = list[tuple[str, str]]
# A contact no generated form names: no fuzzed STOP opts it out before its message goes out.
SENT_TO = "+15005550077"

# ---------------------------------------------------------------------- Twilio-like fields


def mostly[T](usual: st.SearchStrategy[T], unusual: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``usual`` four times in five (a form that fails its first check goes no further);
    failures shrink towards it."""
    return st.integers(0, 4).flatmap(lambda n: unusual if n == 4 else usual)


def sids(prefix: str) -> st.SearchStrategy[str]:
    return st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda hex_: prefix + hex_)


text = st.text(max_size=40)
account_sids = mostly(st.just(ACCOUNT_SID), st.one_of(sids("AC"), text))
message_sids = mostly(st.one_of(sids("SM"), sids("MM")), text)
contacts = mostly(
    st.integers(0, 999).map(lambda n: f"whatsapp:+447700900{n:03d}"),
    st.one_of(
        st.sampled_from(
            [
                "whatsapp:+1\u0665\u0660\u0660\u0665\u0665\u0665\u0660\u0660\u0660\u0666",
                "whatsapp:CC.1234567890abcdef",  # a business-scoped user id
                "+447700900123",
                "whatsapp:",
                "",
            ]
        ),
        text,
    ),
)
senders = mostly(st.just(SENDER), contacts)
# Twilio's numbers arrive as text: small, huge, negative, non-ASCII digits, not numbers.
counts = st.one_of(
    st.integers(-2, 12).map(str),
    st.sampled_from(["3000000", "1e3", "\u0663", " 1", "0x1", "", "+1"]),
    text,
)
coordinates = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e200", "-1e400", "91", "", "1,5", "51.5"]),
    st.floats().map(str),
    text,
)
bodies = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["STOP", "stop ", "START", "UNSUBSCRIBE", "\uff33\uff34\uff2f\uff30", "\x00"]),
)
statuses = mostly(
    st.sampled_from(
        ["accepted", "queued", "sending", "sent", "delivered", "read", "failed", "undelivered"]
    ),
    st.one_of(st.sampled_from(["received", "canceled", "DELIVERED", ""]), text),
)


@st.composite
def twilio_form(
    draw: st.DrawFn,
    required: dict[str, st.SearchStrategy[str]],
    optional: dict[str, st.SearchStrategy[str]],
) -> Form:
    """The fields every form carries, each optional one or not, fields Twilio may add one day,
    then repeated fields with other values (Twilio signs every one)."""
    pairs = [(name, draw(value)) for name, value in required.items()]
    pairs += [(name, draw(value)) for name, value in optional.items() if draw(st.booleans())]
    extra = draw(st.dictionaries(st.text(min_size=1, max_size=20), text, max_size=3))
    repeated = draw(st.lists(st.tuples(st.sampled_from([*required, *optional]), text), max_size=2))
    return pairs + list(extra.items()) + repeated


inbound_forms = twilio_form(
    required={
        "AccountSid": account_sids,
        "MessageSid": message_sids,
        "From": contacts,
        "To": senders,
    },
    optional={
        "Body": bodies,
        "NumMedia": counts,
        "MediaUrl0": st.one_of(st.just("https://api.twilio.com/2010-04-01/Media/ME1"), text),
        "MediaContentType0": st.sampled_from(["image/jpeg", "audio/ogg", "", "x/y"]),
        "Latitude": coordinates,
        "Longitude": coordinates,
        "Address": text,
        "ProfileName": bodies,
        "WaId": st.one_of(st.just("447700900123"), text),
        "ExternalUserId": text,
        "MessageType": st.sampled_from(["text", "image", "location", "button", "interactive"]),
        "ButtonPayload": text,
        "ReferralSourceUrl": text,
        "ReferralNumMedia": counts,
        "NumSegments": counts,
    },
)
status_forms = twilio_form(
    required={
        "AccountSid": account_sids,
        "MessageStatus": statuses,
        "From": senders,
        "To": contacts,
    },
    optional={
        "ErrorCode": counts,
        "ErrorMessage": text,
        "ChannelPrefix": st.just("whatsapp"),
        "SmsStatus": statuses,
    },
)


# ---------------------------------------------------------------------- over HTTP


def post_signed(url: str, form: Form) -> tuple[int, str, str]:
    """The form posted as Twilio posts it, signed with the stack's auth token for ``url``
    (Twilio signs each repeated field's values, sorted); status, content type and body."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, MultiDict(form))
    request = urllib.request.Request(  # noqa: S310  (the local stack)
        url,
        data=urlencode(form).encode(),
        headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def assert_answered_as_the_contract_says(url: str, form: Form) -> None:
    status, content_type, body = post_signed(url, form)
    assert status < 500, f"{status} for {url} {form!r}: {body[:200]}"
    if status >= 400 and status != 403:
        assert content_type.startswith("application/json"), (status, content_type, body)
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str), body
        assert isinstance(error["message"], str), body


@pytest.fixture(scope="module")
def sent(gateway: Gateway) -> tuple[str, str]:
    """A message the gateway sent: its id and Twilio SID, for callbacks that name it."""
    templates_synced(gateway)
    message_id = order_update(gateway, SENT_TO)
    view = wait_status(gateway, message_id, {"sent", "delivered", "read"})
    assert view["twilio_sid"], view
    return message_id, view["twilio_sid"]


@FUZZ
@seed(SEED)
@given(form=inbound_forms)
def test_a_signed_inbound_form_is_never_answered_5xx(gateway: Gateway, form: Form) -> None:
    assert_answered_as_the_contract_says(f"{gateway.url}{INBOUND}", form)


@FUZZ
@seed(SEED)
@given(
    form=status_forms,
    about_the_sent_message=mostly(st.just(True), st.just(False)),
    other_sid=message_sids,
    other_id=st.none() | text,
)
def test_a_signed_status_callback_is_never_answered_5xx(
    gateway: Gateway,
    sent: tuple[str, str],
    form: Form,
    about_the_sent_message: bool,
    other_sid: str,
    other_id: str | None,
) -> None:
    """Mostly about the message the gateway sent, named as the gateway has Twilio name it (its
    SID, its id in the callback URL), else about a message it may not know."""
    sent_id, sent_sid = sent
    message_sid, message_id = (
        (sent_sid, sent_id) if about_the_sent_message else (other_sid, other_id)
    )
    query = "" if message_id is None else "?" + urlencode({"message_id": message_id})
    assert_answered_as_the_contract_says(
        f"{gateway.url}{STATUS}{query}", [("MessageSid", message_sid), *form]
    )
