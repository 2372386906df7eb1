"""The gateway on the local stack, driven only over HTTP as Twilio and a business would: the
README's five-minute demo, and the cases issue 6 lists (a duplicate webhook, a forged
signature, status callbacks out of order, a template pending approval, STOP then a marketing
template, Twilio errors injected through the stand-in).

The stack is shared by the session and its clock only moves forward: each test has a contact
of its own, and one that needs an open service window writes in after any clock advance it
makes (an advance closes every contact's window)."""

import os
import subprocess
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra.local.inbound import inbound_form, post_signed
from tests.e2e.conftest import AUTH_TOKEN, ROOT, SENDER, Gateway
from tests.e2e.steps import (
    DAY,
    DELIVERED_TO_READ,
    ENDED,
    INBOUND,
    accepted,
    address,
    at,
    categories,
    creates_to,
    error_code,
    exchanges,
    fail_next,
    history,
    message,
    order_update,
    post_form,
    post_status,
    send,
    signature,
    status_callback_form,
    templates,
    templates_synced,
    wait_exchanges,
    wait_status,
    windows,
)

TEMPLATE_SIDS = {
    "order_update": "HX" + f"{1:032x}",
    "spring_sale": "HX" + f"{2:032x}",
    "new_feature": "HX" + f"{3:032x}",
}


@pytest.fixture(scope="module")
def stack(gateway: Gateway) -> Gateway:
    """The session's stack, once its start-up sync has stored the stand-in's templates."""
    templates_synced(gateway)
    return gateway


def _advance(gateway: Gateway, seconds: int) -> None:
    status, answer = gateway.request("POST", "/_local/clock/advance", {"seconds": seconds})
    assert status == 200, answer


# ---------------------------------------------------------------------- the README's demo


def test_a_contact_writing_in_opens_the_service_window_for_24_hours(stack):
    contact = "+15005550101"
    # Given a contact's message, posted and signed as Twilio posts it
    url = f"{stack.url}{INBOUND}"
    form = inbound_form(contact, "Hi, where is my order?", stack.settings)

    # When it reaches the inbound webhook
    status, content_type, body = post_form(url, form, signature(url, form))

    # Then Twilio gets an empty TwiML answer
    assert status == 200
    assert content_type.startswith("text/xml")
    assert body.endswith("<Response/>")
    # and the message is recorded, inbound
    received = message(stack, form["MessageSid"])
    assert received["direction"] == "inbound"
    assert (received["from"], received["to"]) == (address(contact), SENDER)
    assert received["body"] == "Hi, where is my order?"
    # and the service window is open for 24 hours from that message, nothing else
    view = windows(stack, contact)
    assert (view["sender"], view["contact"]) == (SENDER, address(contact))
    assert view["service_window"]["open"] is True
    assert at(view["service_window"]["expires_at"]) == at(received["created_at"]) + DAY
    assert view["conversations"] == []
    assert view["opted_out"] is False
    # and the contact may be named by its URL-encoded WhatsApp address, the sender by ?from=
    by_address = "/v1/contacts/whatsapp%3A%2B15005550101/windows?from=whatsapp%3A%2B14155238886"
    assert stack.request("GET", by_address) == (200, view)
    status, answer = stack.request(
        "GET", f"/v1/contacts/{contact}/windows?from=whatsapp%3A%2B19995550000"
    )
    assert (status, error_code(answer)) == (422, "unknown_sender")


def test_make_inbound_writes_in_as_the_contact(stack):
    contact = "+15005550118"
    # Given the README's way to act as a contact (`make inbound FROM=... BODY=...`)
    command = [sys.executable, "-m", "infra.local.inbound", "--from", contact, "--body", "Hi!"]
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("TWILIO_")
    }
    environment |= {"PORT": str(urlsplit(stack.url).port), "PYTHONPATH": "."}
    environment.pop("PUBLIC_BASE_URL", None)

    # When it is run against the stack
    done = subprocess.run(
        command, check=False, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=30
    )

    # Then the signed webhook was taken, and the contact's window is open
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("200 ")
    sid = done.stdout.split("(MessageSid ")[1].rstrip(")\n")
    assert message(stack, sid)["from"] == address(contact)
    assert windows(stack, contact)["service_window"]["open"] is True


def test_a_free_form_reply_goes_out_and_reports_every_status(stack):
    contact = "+15005550102"
    # Given a contact who wrote in
    assert stack.write_in(contact, "Hi!")[0] == 200

    # When the business replies free-form
    message_id = accepted(stack, contact, body="On its way!")

    # Then the stand-in's signed callbacks take it to read, each status once, in order
    view = wait_status(stack, message_id, ENDED)
    assert view["status"] == "read"
    assert history(view) == DELIVERED_TO_READ
    assert view["direction"] == "outbound"
    assert (view["from"], view["to"]) == (SENDER, address(contact))
    assert view["category"] == "service"
    assert view["error_code"] is None
    # and it is the message Twilio took: the body asked for, the SID Twilio answered
    [create] = creates_to(exchanges(stack), contact)
    assert create["form"]["Body"] == ["On its way!"]
    assert create["form"]["From"] == [SENDER]
    assert create["form"]["StatusCallback"][0].endswith(f"?message_id={message_id}")
    assert (create["status"], create["answer"]["sid"]) == (201, view["twilio_sid"])
    # and its delivery opened a service conversation of 24 hours
    windows_now = windows(stack, contact)
    [conversation] = windows_now["conversations"]
    assert conversation["category"] == "service"
    assert at(conversation["expires_at"]) == at(conversation["opened_at"]) + DAY

    # When a second reply is delivered while that conversation is open
    second = accepted(stack, contact, body="Anything else?")
    assert wait_status(stack, second, ENDED)["status"] == "read"

    # Then it opens no other, and the open one is not extended
    assert windows(stack, contact)["conversations"] == [conversation]


def test_after_24_hours_free_form_is_refused_and_an_approved_template_goes_out(stack):
    contact = "+15005550103"
    # Given a contact who wrote in, and the business's free-form reply delivered
    assert stack.write_in(contact, "Hi, where is my order?")[0] == 200
    reply = accepted(stack, contact, body="On its way!")
    assert wait_status(stack, reply, ENDED)["status"] == "read"

    # When the clock moves past 24 hours
    _advance(stack, 86_401)

    # Then the window is closed (and so is the service conversation)
    view = windows(stack, contact)
    assert view["service_window"] == {"open": False, "expires_at": None}
    assert view["conversations"] == []
    # and a free-form message is refused before Twilio is paid for it
    status, answer = send(stack, contact, body="Still there?")
    assert (status, error_code(answer)) == (422, "outside_service_window")
    assert len(creates_to(exchanges(stack), contact)) == 1

    # When the approved utility template is sent instead, by name and language
    message_id = order_update(stack, contact)

    # Then it reaches read
    sent = wait_status(stack, message_id, ENDED)
    assert sent["status"] == "read"
    assert history(sent) == DELIVERED_TO_READ
    assert sent["category"] == "utility"
    assert sent["template"]["sid"] == TEMPLATE_SIDS["order_update"]
    # as the template's Content SID with the caller's variables, no body
    create = creates_to(exchanges(stack), contact)[-1]
    assert create["form"]["ContentSid"] == [TEMPLATE_SIDS["order_update"]]
    assert create["form"]["ContentVariables"] == ['{"1": "Ada"}']
    assert "Body" not in create["form"]
    # and its delivery opened a utility conversation, the service window still closed
    view = windows(stack, contact)
    assert view["service_window"]["open"] is False
    assert categories(view) == ["utility"]
    [utility] = view["conversations"]
    assert at(utility["expires_at"]) == at(utility["opened_at"]) + DAY


# ---------------------------------------------------------------------- webhooks


def test_a_duplicated_inbound_webhook_is_recorded_once(stack):
    contact = "+15005550104"
    url = f"{stack.url}{INBOUND}"
    # Given a contact's message received once
    status, form = stack.write_in(contact, "Is it shipped?")
    assert status == 200
    first = message(stack, form["MessageSid"])
    window = windows(stack, contact)["service_window"]

    # When Twilio posts the very same signed form again, a minute later
    _advance(stack, 60)
    status, answer = post_signed(url, form, AUTH_TOKEN)

    # Then it is acknowledged
    assert (status, answer.endswith("<Response/>")) == (200, True)
    # and changes nothing: the same record, the window not extended by the duplicate
    assert message(stack, form["MessageSid"]) == first
    assert windows(stack, contact)["service_window"] == window


@pytest.mark.parametrize(
    ("contact", "forgery"),
    [
        pytest.param("+15005550105", "wrong-token", id="signed-with-another-token"),
        pytest.param("+15005550106", "tampered", id="body-changed-after-signing"),
        pytest.param("+15005550107", "unsigned", id="no-signature"),
    ],
)
def test_a_forged_inbound_webhook_is_refused_and_nothing_is_stored(stack, contact, forgery):
    url = f"{stack.url}{INBOUND}"
    # Given a contact's message not provably from Twilio
    form = inbound_form(contact, "Hi, where is my order?", stack.settings)
    signed: str | None = {
        "wrong-token": signature(url, form, "not-the-auth-token"),
        "tampered": signature(url, form | {"Body": "what Twilio signed"}),
        "unsigned": None,
    }[forgery]

    # When it is posted to the inbound webhook
    status, _, body = post_form(url, form, signed)

    # Then it is refused 403, telling nothing
    assert (status, body) == (403, "Forbidden")
    # and nothing is stored: no message, no window
    assert stack.request("GET", f"/v1/messages/{form['MessageSid']}")[0] == 404
    assert windows(stack, contact)["service_window"]["open"] is False


def test_late_duplicated_and_reordered_status_callbacks_change_nothing(stack):
    contact = "+15005550108"
    # Given a reply the stand-in took to read
    assert stack.write_in(contact, "Hi!")[0] == 200
    message_id = accepted(stack, contact, body="On its way!")
    before = wait_status(stack, message_id, ENDED)
    assert before["status"] == "read"
    conversations = windows(stack, contact)["conversations"]

    # When Twilio's callbacks arrive again, late, backwards and repeated
    for reported in ("delivered", "read", "sent", "queued", "delivered", "sent"):
        form = status_callback_form(contact, before["twilio_sid"], reported)
        assert post_status(stack, message_id, form) == 200

    # Then the message is as it was: read, each status once with its first time
    assert message(stack, message_id) == before
    assert windows(stack, contact)["conversations"] == conversations

    # When a forged callback says it failed
    form = status_callback_form(contact, before["twilio_sid"], "failed", ErrorCode="30008")
    status = post_status(stack, message_id, form, token="not-the-auth-token")

    # Then it is refused and changes nothing
    assert status == 403
    assert message(stack, message_id) == before

    # When a callback names a message the gateway does not know
    form = status_callback_form(contact, "SM" + uuid.uuid4().hex, "delivered")

    # Then it is acknowledged all the same (Twilio would retry an error for ever)
    assert post_status(stack, "no-such-message", form) == 200


def test_status_callbacks_out_of_order_end_read_with_each_status_once(stack):
    contact = "+15005550109"
    # Given a message whose first attempt got a 500: Twilio may have taken it, so its callbacks
    # count (after a 429, Twilio took nothing and any callback is forged); retried in 30 s
    assert stack.write_in(contact, "Hi!")[0] == 200
    fail_next(stack, contact, 20500)
    message_id = accepted(stack, contact, body="On its way!")
    wait_exchanges(stack, lambda recorded: bool(creates_to(recorded, contact)))
    twilio_sid = "SM" + uuid.uuid4().hex

    # When its callbacks arrive read first, then delivered, duplicates, the early ones last
    for reported in ("read", "delivered", "read", "sent", "delivered", "queued", "sent"):
        form = status_callback_form(contact, twilio_sid, reported)
        assert post_status(stack, message_id, form) == 200

    # Then it ends read, each status once in its history
    view = message(stack, message_id)
    assert view["status"] == "read"
    assert sorted(history(view)) == sorted(DELIVERED_TO_READ)
    assert view["twilio_sid"] == twilio_sid
    # and the first delivery (the read) opened the service conversation, once
    assert categories(windows(stack, contact)) == ["service"]


# ---------------------------------------------------------------------- the WhatsApp rules


def test_a_template_pending_approval_is_refused_and_never_reaches_twilio(stack):
    contact = "+15005550110"
    # Given a contact who wrote in, and new_feature still pending Meta's approval
    assert stack.write_in(contact, "Hi!")[0] == 200
    [pending] = templates(stack, "?name=new_feature")
    assert pending["status"] == "pending"

    # When the business sends it, by name or by its Content SID
    by_name = send(
        stack,
        contact,
        template={"name": "new_feature", "language": "en"},
        variables={"1": "Ada"},
    )
    by_sid = send(stack, contact, template={"content_sid": pending["sid"]}, variables={"1": "Ada"})

    # Then both are refused 422 template_not_approved
    for status, answer in (by_name, by_sid):
        assert (status, error_code(answer)) == (422, "template_not_approved")
    # and so are an unknown template, and an approved one missing its variables
    status, answer = send(stack, contact, template={"name": "no_such", "language": "en"})
    assert (status, error_code(answer)) == (422, "template_not_found")
    status, answer = send(stack, contact, template={"name": "order_update", "language": "en"})
    assert (status, error_code(answer)) == (422, "template_variables_missing")
    # none of which reached Twilio
    assert creates_to(exchanges(stack), contact) == []


def test_stop_refuses_marketing_templates_until_start(stack):
    contact = "+15005550111"
    spring_sale = {
        "template": {"name": "spring_sale", "language": "en"},
        "variables": {"1": "Ada"},
    }
    # Given a contact who wrote STOP
    assert stack.write_in(contact, "STOP")[0] == 200
    assert windows(stack, contact)["opted_out"] is True

    # When the business sends the approved marketing template
    status, answer = send(stack, contact, **spring_sale)

    # Then it is refused 422 contact_opted_out, and never reaches Twilio
    assert (status, error_code(answer)) == (422, "contact_opted_out")
    assert creates_to(exchanges(stack), contact) == []

    # When the contact writes START, and the business sends it again
    assert stack.write_in(contact, "START")[0] == 200
    assert windows(stack, contact)["opted_out"] is False
    message_id = accepted(stack, contact, **spring_sale)

    # Then it goes out, and its delivery opens a marketing conversation
    view = wait_status(stack, message_id, ENDED)
    assert (view["status"], view["category"]) == ("read", "marketing")
    assert len(creates_to(exchanges(stack), contact)) == 1
    assert categories(windows(stack, contact)) == ["marketing"]


def test_the_api_refuses_what_it_cannot_send(stack):
    contact = "+15005550116"
    # Given a contact who wrote in
    assert stack.write_in(contact, "Hi!")[0] == 200

    # When the business sends malformed messages, or asks for an unknown one
    cases = [
        ({"to": contact, "body": "x", "template": {"name": "spring_sale", "language": "en"}}),
        ({"to": "15005550116", "body": "not E.164"}),
        ({"to": contact, "body": "x", "priority": "high"}),
        ({"to": contact, "media_urls": ["http://example.com/not-https.jpg"]}),
    ]
    answers = [stack.request("POST", "/v1/messages", case) for case in cases]
    unknown = stack.request("GET", "/v1/messages/no-such-message")

    # Then each is refused with its code, and nothing reaches Twilio
    assert [(status, error_code(answer)) for status, answer in answers] == [
        (400, "invalid_request")
    ] * len(cases)
    assert (unknown[0], error_code(unknown[1])) == (404, "message_not_found")
    assert creates_to(exchanges(stack), contact) == []


# ---------------------------------------------------------------------- Twilio's errors


def test_a_twilio_error_that_is_final_fails_the_message_with_its_code(stack):
    contact = "+15005550112"
    # Given a contact who wrote in, and Twilio about to refuse the next message (63016)
    assert stack.write_in(contact, "Hi!")[0] == 200
    fail_next(stack, contact, 63016)

    # When the business replies
    message_id = accepted(stack, contact, body="On its way!")

    # Then the message ends failed with Twilio's code and message, never retried
    view = wait_status(stack, message_id, ENDED)
    assert view["status"] == "failed"
    assert view["error_code"] == "63016"
    assert view["error_message"]
    assert view["twilio_sid"] is None
    assert history(view) == ["accepted", "failed"]
    assert view["status_history"][-1]["error_code"] == "63016"
    [create] = creates_to(exchanges(stack), contact)
    assert (create["status"], create["answer"]["code"]) == (400, 63016)
    # and no conversation was opened
    assert windows(stack, contact)["conversations"] == []


def test_a_throttled_message_waits_for_its_retry(stack):
    contact = "+15005550113"
    # Given a contact who wrote in, and Twilio about to throttle the next message (20429)
    assert stack.write_in(contact, "Hi!")[0] == 200
    fail_next(stack, contact, 20429)

    # When the business replies, and Twilio answered the worker's attempt
    message_id = accepted(stack, contact, body="On its way!")
    recorded = wait_exchanges(stack, lambda recorded: bool(creates_to(recorded, contact)))
    time.sleep(0.5)

    # Then Twilio said 429, and the message is neither failed nor sent: it waits for the
    # worker's retry (30 s later, through the queue)
    [create] = creates_to(recorded, contact)
    assert (create["status"], create["answer"]["code"]) == (429, 20429)
    view = message(stack, message_id)
    assert view["status"] == "accepted"
    assert view["error_code"] is None
    assert view["twilio_sid"] is None
    assert len(creates_to(exchanges(stack), contact)) == 1


# ---------------------------------------------------------------------- templates and keys


def test_templates_are_listed_as_synced_from_twilio_and_a_sync_runs_on_demand(stack):
    # Given the stand-in's templates, synced at start-up
    listed = templates(stack)

    # Then each is listed with its approval status and its category in lower case
    assert {t["name"]: (t["status"], t["category"], t["language"]) for t in listed} == {
        "order_update": ("approved", "utility", "en"),
        "spring_sale": ("approved", "marketing", "en"),
        "new_feature": ("pending", "marketing", "en"),
    }
    assert {t["name"]: t["sid"] for t in listed} == TEMPLATE_SIDS
    assert all(t["placeholders"] == ["1"] for t in listed)
    # and the filters apply
    assert {t["name"] for t in templates(stack, "?status=approved")} == {
        "order_update",
        "spring_sale",
    }
    assert {t["name"] for t in templates(stack, "?category=MARKETING")} == {
        "spring_sale",
        "new_feature",
    }

    # When a sync is asked for
    listings = len([e for e in exchanges(stack) if e["path"] == "/v1/ContentAndApprovals"])
    status, answer = stack.request("POST", "/v1/templates/sync")

    # Then it is started (202), and reads Twilio's Content API again
    assert status == 202, answer
    wait_exchanges(
        stack,
        lambda recorded: (
            len([e for e in recorded if e["path"] == "/v1/ContentAndApprovals"]) > listings
        ),
    )
    # and the schedule's run, on demand, syncs the three templates
    status, answer = stack.request(
        "POST", "/_local/schedules/run", {"function": "TemplateSyncFunction"}
    )
    assert status == 200, answer
    assert list(answer["result"]["synced"].values()) == [3]
    # and each template is as before, seen by this sync
    resynced = templates(stack)
    assert [_without_last_seen(t) for t in resynced] == [_without_last_seen(t) for t in listed]
    assert all(
        at(after["last_seen_at"]) >= at(before["last_seen_at"])
        for after, before in zip(resynced, listed, strict=True)
    )


def _without_last_seen(template: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in template.items() if name != "last_seen_at"}


def test_the_same_idempotency_key_and_body_send_once(stack):
    contact = "+15005550114"
    key = {"Idempotency-Key": f"order-42-{uuid.uuid4().hex}"}
    body = {"to": contact, "body": "Your order has shipped"}
    # Given a contact who wrote in
    assert stack.write_in(contact, "Hi!")[0] == 200

    # When the business posts the same message twice with the same key
    first = stack.request("POST", "/v1/messages", body, **key)
    again = stack.request("POST", "/v1/messages", body, **key)

    # Then both answers are the first one: the same id
    assert first[0] == 202, first
    assert again == first
    # and one message goes out
    assert wait_status(stack, first[1]["id"], ENDED)["status"] == "read"
    assert len(creates_to(exchanges(stack), contact)) == 1

    # When the same key comes with another body
    status, answer = stack.request("POST", "/v1/messages", body | {"body": "Other"}, **key)

    # Then it is refused 409
    assert (status, error_code(answer)) == (409, "idempotency_key_reused")
    assert len(creates_to(exchanges(stack), contact)) == 1


# Last: the contact's second message stays queued behind the first until its retry (30 s), and
# while a FIFO group holds a message behind an in-flight one, moto's long polls busy-loop and
# slow every AWS call of the stack (only the contract test runs after it).


def test_a_contacts_next_message_waits_behind_a_throttled_one(stack):
    contact = "+15005550115"
    # Given a contact's message throttled by Twilio, waiting for its retry
    assert stack.write_in(contact, "Hi!")[0] == 200
    fail_next(stack, contact, 20429)
    first = accepted(stack, contact, body="first")
    wait_exchanges(stack, lambda recorded: bool(creates_to(recorded, contact)))

    # When the business sends that contact another message
    second = accepted(stack, contact, body="second")
    time.sleep(1.5)

    # Then it is held back behind the first (one contact's messages go out in order)
    assert [e["form"]["Body"] for e in creates_to(exchanges(stack), contact)] == [["first"]]
    assert message(stack, first)["status"] == "accepted"
    assert message(stack, second)["status"] == "accepted"
