"""The local Twilio stand-in: the Messages and Content operations the gateway calls, answered
as Twilio answers them (shapes of ``twilio_api_v2010.json`` and ``twilio_content_v1.json``),
with signed status callbacks for every message it accepts; and the fetch and update of WhatsApp
senders (Messaging v2 Senders) and Messaging Services (Messaging v1) that
``make configure-twilio`` calls, shaped as the SDK's models of them read.

It keeps what it was asked and answered (for the contract test of the e2e suite), and it can be
told to fail the next message to a contact with a Twilio error code.
"""

import base64
import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator

from whatsapp_gateway.clock import Clock

MESSAGES_PATH = "/2010-04-01/Accounts/{account}/Messages.json"
CONTENT_PATH = "/v1/ContentAndApprovals"
# messaging.twilio.com: a WhatsApp sender (XE...) and a Messaging Service (MG...).
SENDER_PATH = re.compile(r"^/v2/Channels/Senders/(XE[0-9a-fA-F]{32})$")
SERVICE_PATH = re.compile(r"^/v1/Services/(MG[0-9a-fA-F]{32})$")
MESSAGING_URL = "https://messaging.twilio.com"
# What a message goes through once Twilio took it, each reported to its StatusCallback.
CALLBACK_STATUSES = ("queued", "sent", "delivered", "read")
# The Messaging Service fields that are booleans (a form carries them as "true"/"false").
_SERVICE_FLAGS = frozenset(
    {
        "sticky_sender",
        "mms_converter",
        "smart_encoding",
        "fallback_to_long_code",
        "area_code_geomatch",
        "synchronous_validation",
        "use_inbound_webhook_on_number",
    }
)
# Twilio's HTTP status for an error code a message can be failed with.
_ERROR_STATUS = {20429: 429, 63018: 429, 20500: 500, 20503: 503}


def default_templates(account_sid: str) -> list[dict[str, Any]]:
    """The templates the stand-in serves until told otherwise: one of each kind the README's
    scenarios use."""

    def template(number: int, name: str, body: str, status: str, category: str) -> dict[str, Any]:
        return {
            "date_created": "2026-11-01T10:00:00Z",
            "date_updated": "2026-11-01T10:00:00Z",
            "sid": f"HX{number:032x}",
            "account_sid": account_sid,
            "friendly_name": name,
            "language": "en",
            "variables": {"1": "Ada"},
            "types": {"twilio/text": {"body": body}},
            "approval_requests": {
                "name": name,
                "category": category,
                "content_type": "twilio/text",
                "status": status,
                "rejection_reason": "",
                "allow_category_change": False,
            },
        }

    return [
        template(1, "order_update", "Hello {{1}}, your order has shipped.", "approved", "UTILITY"),
        template(2, "spring_sale", "{{1}}, our spring sale starts today!", "approved", "MARKETING"),
        template(3, "new_feature", "{{1}}, meet our new app.", "pending", "MARKETING"),
    ]


@dataclass
class Exchange:
    """One request the stand-in received, and its answer."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    status: int
    answer: dict[str, Any]
    # A JSON request's body (the Senders API takes JSON, the others forms).
    body: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "form": self.form,
            "status": self.status,
            "answer": self.answer,
            "body": self.body,
        }


@dataclass
class TwilioStandIn:
    account_sid: str
    auth_token: str
    clock: Clock
    templates: list[dict[str, Any]] = field(default_factory=list)
    callback_delay_seconds: float = 0.05
    exchanges: list[Exchange] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # WhatsApp senders and Messaging Services by SID (see whatsapp_sender, messaging_service).
    senders: dict[str, dict[str, Any]] = field(default_factory=dict)
    messaging_services: dict[str, dict[str, Any]] = field(default_factory=dict)
    _failures: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ control

    def start(self, port: int) -> str:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in._handle(self)

            def do_POST(self) -> None:
                stand_in._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the gateway logs its own requests."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail_next(self, to: str, error_code: int) -> None:
        """The next message to ``to`` (E.164 or whatsapp: address) fails with ``error_code``."""
        with self._lock:
            self._failures[to.removeprefix("whatsapp:")] = error_code

    # ------------------------------------------------------------------ serving

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode()
        json_body: dict[str, Any] | None = None
        if request.headers.get("Content-Type", "").startswith("application/json"):
            json_body, form = json.loads(raw or "{}"), {}
        else:
            form = parse_qs(raw, keep_blank_values=True)
        sender = SENDER_PATH.match(parts.path)
        service = SERVICE_PATH.match(parts.path)
        if not self._authorized(request.headers.get("Authorization", "")):
            status, answer = 401, _error(401, 20003, "Authenticate")
        elif sender and request.command in ("GET", "POST"):
            update = json_body if request.command == "POST" else None
            status, answer = self._sender(sender[1], update)
        elif service and request.command in ("GET", "POST"):
            status, answer = self._service(service[1], form if request.command == "POST" else None)
        elif request.command == "POST" and parts.path == MESSAGES_PATH.format(
            account=self.account_sid
        ):
            status, answer = self._create_message(form)
        elif request.command == "GET" and parts.path == MESSAGES_PATH.format(
            account=self.account_sid
        ):
            status, answer = 200, self._list_messages(query)
        elif request.command == "GET" and parts.path == CONTENT_PATH:
            status, answer = 200, self._content_page(query)
        else:
            status, answer = 404, _error(404, 20404, "The requested resource was not found")
        with self._lock:
            self.exchanges.append(
                Exchange(request.command, parts.path, query, form, status, answer, json_body)
            )
        body = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _authorized(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _create_message(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def one(name: str) -> str | None:
            return form.get(name, [None])[0]

        to, sender = one("To") or "", one("From") or ""
        with self._lock:
            code = self._failures.pop(to.removeprefix("whatsapp:"), None)
            number = len(self.messages) + 1
        if code is not None:
            status = _ERROR_STATUS.get(code, 400)
            return status, _error(status, code, f"Twilio error {code} (injected)")
        sid = f"SM{number:032x}"
        message = _message(
            sid,
            account_sid=self.account_sid,
            sender=sender,
            contact=to,
            body=one("Body") or "",
            num_media=len(form.get("MediaUrl", [])),
            created=self.clock.now(),
        )
        with self._lock:
            self.messages[sid] = message
        if callback := one("StatusCallback"):
            threading.Thread(
                target=self._report_statuses, args=(sid, callback), daemon=True
            ).start()
        return 201, message

    def _list_messages(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """The account's messages newest first, filtered as Twilio filters them: by To, From
        and DateSent (a message not sent yet has no date_sent, and no DateSent filter matches
        it), PageSize at a time."""
        first = {name: values[0] for name, values in query.items()}
        wanted = {key: first[key] for key in ("To", "From") if key in first}
        with self._lock:
            matching = [
                message
                for message in reversed(self.messages.values())  # newest first, as Twilio
                if all(message[key.lower()] == value for key, value in wanted.items())
                and matches_date_sent(message, first)
            ]
        size = int(first.get("PageSize", "50"))
        page = int(first.get("Page", "0"))
        start = page * size
        listed = matching[start : start + size]
        filters = {key: first[key] for key in first if key.startswith(("To", "From", "DateSent"))}

        def page_uri(number: int, token: bool = False) -> str:
            paging = {"PageSize": size, "Page": number} | (
                {"PageToken": f"PA{number}"} if token else {}
            )
            return f"{MESSAGES_PATH.format(account=self.account_sid)}?{urlencode(filters | paging)}"

        more = len(matching) > start + size
        return {
            "messages": listed,
            "end": start + len(listed) - 1 if listed else start,
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1, token=True) if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": page_uri(page - 1) if page else None,
            "start": start,
            "uri": page_uri(page),
        }

    def _content_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        size = int(query.get("PageSize", ["50"])[0])
        page = int(query.get("Page", ["0"])[0])
        start = page * size
        url = f"https://content.twilio.com{CONTENT_PATH}?PageSize={size}"
        last = start + size >= len(self.templates)
        return {
            "contents": self.templates[start : start + size],
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": f"{url}&Page=0",
                "previous_page_url": f"{url}&Page={page - 1}" if page else None,
                "url": f"{url}&Page={page}",
                "next_page_url": None if last else f"{url}&Page={page + 1}&PageToken=PT{page + 1}",
                "key": "contents",
            },
        }

    def _sender(self, sid: str, update: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        """Fetch (``update`` None) or update of a WhatsApp sender. As with the SDK's update
        model, a field left null (or out) keeps its value."""
        with self._lock:
            sender = self.senders.get(sid)
            if sender is None:
                return 404, _error(
                    404, 20404, f"The requested resource /Channels/Senders/{sid} was not found"
                )
            for name, value in (update or {}).items():
                if isinstance(value, dict) and isinstance(sender.get(name), dict):
                    sender[name].update({k: v for k, v in value.items() if v is not None})
                elif value is not None:
                    sender[name] = value
            return 200, json.loads(json.dumps(sender))

    def _service(self, sid: str, update: dict[str, list[str]] | None) -> tuple[int, dict[str, Any]]:
        """Fetch (``update`` None) or update of a Messaging Service: the form's fields (the
        SDK's PascalCase names) set the resource's (snake_case); unknown ones are ignored."""
        with self._lock:
            service = self.messaging_services.get(sid)
            if service is None:
                return 404, _error(
                    404, 20404, f"The requested resource /Services/{sid} was not found"
                )
            for name, values in (update or {}).items():
                field_name = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
                if field_name not in service:
                    continue
                value: Any = values[-1]
                if field_name in _SERVICE_FLAGS:
                    value = value == "true"
                service[field_name] = value
            if update:
                service["date_updated"] = _iso(self.clock.now())
            return 200, dict(service)

    def _report_statuses(self, sid: str, callback: str) -> None:
        """Posts queued, sent, delivered and read to the message's StatusCallback, signed as
        Twilio signs them."""
        validator = RequestValidator(self.auth_token)
        for status in CALLBACK_STATUSES:
            time.sleep(self.callback_delay_seconds)
            with self._lock:
                message = self.messages[sid]
                message["status"] = status
                if status == "sent":
                    # Twilio dates a message sent only once it is: null while it queues.
                    message["date_sent"] = format_datetime(self.clock.now())
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "ChannelPrefix": "whatsapp",
                "From": message["from"],
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": message["to"],
            }
            body = urlencode(params).encode()
            request = urllib.request.Request(  # noqa: S310  (the gateway's own URL)
                callback,
                data=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": validator.compute_signature(callback, params),
                    "I-Twilio-Idempotency-Token": f"{sid}-{status}",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10):  # noqa: S310
                    pass
            except OSError:
                return  # the gateway is gone (stopping); Twilio would retry later


def _message(
    sid: str,
    *,
    account_sid: str,
    sender: str,
    contact: str,
    body: str,
    num_media: int,
    created: Any,
) -> dict[str, Any]:
    """A Message resource as Twilio answers it (dates in RFC 2822, counts as strings)."""
    path = MESSAGES_PATH.format(account=account_sid).removesuffix(".json")
    date = format_datetime(created)
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": date,
        "date_sent": None,
        "date_updated": date,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": None,
        "num_media": str(num_media),
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{path}/{sid}/Media.json"},
        "to": contact,
        "uri": f"{path}/{sid}.json",
    }


def whatsapp_sender(sid: str, sender_id: str, **webhook: str | None) -> dict[str, Any]:
    """A WhatsApp sender as the Senders API answers it (Messaging v2), its ``webhook`` fields
    replaced by ``webhook``."""
    return {
        "sid": sid,
        "status": "ONLINE",
        "sender_id": sender_id,
        "friendly_name": None,
        "configuration": {
            "waba_id": "100000000000001",
            "verification_method": "sms",
            "verification_code": None,
            "voice_application_sid": None,
            "account_type": None,
        },
        "webhook": {
            "callback_url": None,
            "callback_method": "POST",
            "fallback_url": None,
            "fallback_method": "POST",
            "status_callback_url": None,
            "status_callback_method": "POST",
        }
        | webhook,
        "profile": {"name": "Local Business", "about": None, "vertical": "Other"},
        "properties": {"quality_rating": "HIGH", "messaging_limit": "1K Customers/24hr"},
        "offline_reasons": None,
        "compliance": None,
        "url": f"{MESSAGING_URL}/v2/Channels/Senders/{sid}",
    }


def messaging_service(
    sid: str, account_sid: str, created: datetime, **fields: str | bool | None
) -> dict[str, Any]:
    """A Messaging Service as Messaging v1 answers it, ``fields`` replaced."""
    url = f"{MESSAGING_URL}/v1/Services/{sid}"
    return {
        "sid": sid,
        "account_sid": account_sid,
        "friendly_name": "WhatsApp gateway",
        "date_created": _iso(created),
        "date_updated": _iso(created),
        "inbound_request_url": None,
        "inbound_method": "POST",
        "fallback_url": None,
        "fallback_method": "POST",
        "status_callback": None,
        "sticky_sender": True,
        "mms_converter": True,
        "smart_encoding": True,
        "scan_message_content": "inherit",
        "fallback_to_long_code": False,
        "area_code_geomatch": True,
        "synchronous_validation": False,
        "validity_period": 36000,
        "url": url,
        "links": {
            "phone_numbers": f"{url}/PhoneNumbers",
            "short_codes": f"{url}/ShortCodes",
            "alpha_senders": f"{url}/AlphaSenders",
            "channel_senders": f"{url}/ChannelSenders",
        },
        "usecase": "undeclared",
        "us_app_to_person_registered": False,
        "use_inbound_webhook_on_number": True,
    } | fields


def matches_date_sent(message: dict[str, Any], query: dict[str, str]) -> bool:
    """Twilio's DateSent filters of a Messages list: ``DateSent`` a day (or a time),
    ``DateSent>`` on or after, ``DateSent<`` on or before. A message not sent yet has no
    date_sent and matches none of them."""
    bounds = {name: query[name] for name in ("DateSent", "DateSent>", "DateSent<") if name in query}
    if not bounds:
        return True
    if message["date_sent"] is None:
        return False
    sent_at = parsedate_to_datetime(message["date_sent"])
    for name, value in bounds.items():
        if len(value) == len("YYYY-MM-DD"):  # the whole day, GMT
            day = date.fromisoformat(value)
            within = {
                "DateSent": sent_at.date() == day,
                "DateSent>": sent_at.date() >= day,
                "DateSent<": sent_at.date() <= day,
            }
        else:
            moment = datetime.fromisoformat(value)
            within = {
                "DateSent": sent_at == moment,
                "DateSent>": sent_at >= moment,
                "DateSent<": sent_at <= moment,
            }
        if not within[name]:
            return False
    return True


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
