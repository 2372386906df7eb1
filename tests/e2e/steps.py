"""What the e2e tests do over HTTP, as Twilio and a business would: send, look at a message or
a contact's windows, post signed (or forged) webhooks, and read what the Twilio stand-in
received (``/_local/twilio/exchanges``)."""

import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, SENDER, Gateway

DAY = timedelta(hours=24)
FORM = "application/x-www-form-urlencoded"
INBOUND = "/webhooks/twilio/inbound"
STATUS = "/webhooks/twilio/status"
# Every status a message goes through once the stand-in took it, in order.
DELIVERED_TO_READ = ["accepted", "queued", "sent", "delivered", "read"]
ENDED = {"read", "failed", "undelivered"}
TEMPLATE_NAMES = {"order_update", "spring_sale", "new_feature"}


def address(contact: str) -> str:
    return f"whatsapp:{contact}"


def at(text: str) -> datetime:
    """An ISO 8601 time of the API (``...Z``)."""
    return datetime.fromisoformat(text)


def signature(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def post_form(url: str, form: dict[str, str], signed: str | None) -> tuple[int, str, str]:
    """A form posted as Twilio posts its webhooks, with ``signed`` as X-Twilio-Signature (none
    when None); the status, content type and body of the answer."""
    headers = {"Content-Type": FORM}
    if signed is not None:
        headers["X-Twilio-Signature"] = signed
    request = urllib.request.Request(  # noqa: S310  (the local stack)
        url, data=urlencode(form).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def status_callback_form(
    contact: str, twilio_sid: str, status: str, **extra: str
) -> dict[str, str]:
    """Twilio's status callback of a message from the sender to ``contact``."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": SENDER,
        "MessageSid": twilio_sid,
        "MessageStatus": status,
        "SmsSid": twilio_sid,
        "SmsStatus": status,
        "To": address(contact),
        **extra,
    }


def post_status(
    gateway: Gateway, message_id: str, form: dict[str, str], token: str = AUTH_TOKEN
) -> int:
    """A status callback to the URL the gateway gave Twilio for the message, signed."""
    url = f"{gateway.url}{STATUS}?message_id={message_id}"
    status, _, _ = post_form(url, form, signature(url, form, token))
    return status


# ---------------------------------------------------------------------- the business's API


def send(gateway: Gateway, contact: str, **fields: Any) -> tuple[int, Any]:
    return gateway.request("POST", "/v1/messages", {"to": contact, **fields})


def accepted(gateway: Gateway, contact: str, **fields: Any) -> str:
    """Sends; the id of the accepted message."""
    status, answer = send(gateway, contact, **fields)
    assert (status, answer.get("status")) == (202, "accepted"), answer
    message_id: str = answer["id"]
    return message_id


def order_update(gateway: Gateway, contact: str) -> str:
    """The README's approved utility template, by name and language."""
    return accepted(
        gateway,
        contact,
        template={"name": "order_update", "language": "en"},
        variables={"1": "Ada"},
    )


def message(gateway: Gateway, message_id: str) -> dict[str, Any]:
    status, answer = gateway.request("GET", f"/v1/messages/{message_id}")
    assert status == 200, answer
    view: dict[str, Any] = answer
    return view


def wait_status(
    gateway: Gateway, message_id: str, statuses: set[str], timeout: float = 15
) -> dict[str, Any]:
    """The message once its status is one of ``statuses`` (the last view after ``timeout``)."""
    view: dict[str, Any] = gateway.wait_for(
        f"/v1/messages/{message_id}", lambda m: m.get("status") in statuses, timeout
    )
    return view


def history(view: dict[str, Any]) -> list[str]:
    return [entry["status"] for entry in view["status_history"]]


def windows(gateway: Gateway, contact: str) -> dict[str, Any]:
    status, answer = gateway.request("GET", f"/v1/contacts/{contact}/windows")
    assert status == 200, answer
    view: dict[str, Any] = answer
    return view


def categories(view: dict[str, Any]) -> list[str]:
    return [conversation["category"] for conversation in view["conversations"]]


def error_code(answer: Any) -> str:
    code: str = answer["error"]["code"]
    return code


def templates(gateway: Gateway, query: str = "") -> list[dict[str, Any]]:
    status, answer = gateway.request("GET", f"/v1/templates{query}")
    assert status == 200, answer
    listed: list[dict[str, Any]] = answer["templates"]
    return listed


def templates_synced(gateway: Gateway) -> None:
    """Waits for the start-up sync to have stored the stand-in's templates."""
    gateway.wait_for(
        "/v1/templates",
        lambda answer: {t["name"] for t in answer.get("templates", [])} >= TEMPLATE_NAMES,
    )


# ---------------------------------------------------------------------- the Twilio stand-in


def exchanges(gateway: Gateway) -> list[dict[str, Any]]:
    status, answer = gateway.request("GET", "/_local/twilio/exchanges")
    assert status == 200, answer
    recorded: list[dict[str, Any]] = answer["exchanges"]
    return recorded


def creates_to(recorded: list[dict[str, Any]], contact: str) -> list[dict[str, Any]]:
    """The Messages create requests the stand-in received for ``contact``."""
    return [
        e
        for e in recorded
        if e["method"] == "POST"
        and e["path"].endswith("/Messages.json")
        and e["form"].get("To") == [address(contact)]
    ]


def wait_exchanges(
    gateway: Gateway, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 15
) -> list[dict[str, Any]]:
    """The stand-in's exchanges once ``done(exchanges)`` (the last ones after ``timeout``)."""
    answer = gateway.wait_for(
        "/_local/twilio/exchanges", lambda a: done(a.get("exchanges", [])), timeout
    )
    recorded: list[dict[str, Any]] = answer["exchanges"]
    return recorded


def fail_next(gateway: Gateway, contact: str, code: int) -> None:
    """The stand-in fails the next message to ``contact`` with Twilio's error ``code``."""
    status, answer = gateway.request(
        "POST", "/_local/twilio/fail", {"to": contact, "error_code": code}
    )
    assert status == 200, answer
