"""A contact writing in: a WhatsApp inbound webhook posted to the local gateway, signed as
Twilio signs it. `make inbound FROM=+15005550006 BODY="hi"`."""

import argparse
import sys
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from infra.local import defaults

PATH = "/webhooks/twilio/inbound"


def inbound_form(contact: str, body: str, settings: dict[str, str]) -> dict[str, str]:
    """The form Twilio posts for an inbound WhatsApp text message."""
    sid = "SM" + uuid.uuid4().hex
    address = contact if contact.startswith("whatsapp:") else f"whatsapp:{contact}"
    return {
        "AccountSid": settings["TWILIO_ACCOUNT_SID"],
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": address,
        "MessageSid": sid,
        "MessageType": "text",
        "NumMedia": "0",
        "NumSegments": "1",
        "ProfileName": "Local Contact",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": settings["WHATSAPP_FROM"],
        "WaId": address.removeprefix("whatsapp:+"),
    }


def post_signed(url: str, form: dict[str, str], token: str) -> tuple[int, str]:
    signature = RequestValidator(token).compute_signature(url, form)
    request = urllib.request.Request(  # noqa: S310  (the local gateway)
        url,
        data=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="contact", default="+15005550006")
    parser.add_argument("--body", default="Hi!")
    arguments = parser.parse_args()
    settings = defaults.twilio_settings()
    form = inbound_form(arguments.contact, arguments.body, settings)
    status, answer = post_signed(
        settings["PUBLIC_BASE_URL"].rstrip("/") + PATH, form, settings["TWILIO_AUTH_TOKEN"]
    )
    print(f"{status} {answer}  (MessageSid {form['MessageSid']})")
    sys.exit(0 if status == 200 else 1)


if __name__ == "__main__":
    main()
