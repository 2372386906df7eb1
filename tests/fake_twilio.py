"""A fake of Twilio's REST API, injected into the official client as its HTTP layer: it records
every request as the SDK hands it over and answers with bodies shaped like Twilio's 2010
Messages API (the contract tests check them against Twilio's OpenAPI description).

It keeps the messages it created as Twilio does: ``queued`` with ``date_created`` set and
``date_sent`` null until Twilio actually sends them (``mark_sent``), and lists them newest
first, filtered by To, From and DateSent as Twilio filters them (a DateSent filter leaves out
every message not sent yet), a page of PageSize at a time."""

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, override
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response

from infra.local.twilio_standin import matches_date_sent
from tests.conftest import TEST_ACCOUNT_SID

API = "https://api.twilio.com"
SENT_AT = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


def messages_path(account_sid: str = TEST_ACCOUNT_SID) -> str:
    return f"/2010-04-01/Accounts/{account_sid}/Messages.json"


def message_sid(number: int) -> str:
    return f"SM{number:032x}"


@dataclass(frozen=True)
class SentRequest:
    """One request as the SDK gave it to its HTTP client."""

    method: str
    url: str
    params: dict[str, object]
    data: dict[str, object]
    headers: dict[str, str]
    auth: tuple[str, str] | None
    timeout: float | None

    def form(self) -> dict[str, list[str]]:
        """The body as it goes on the wire: every field with its values, in order."""
        return _decoded(self.data)

    def query(self) -> dict[str, list[str]]:
        return _decoded(self.params)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] | str

    @property
    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


@dataclass(frozen=True)
class CreatedThen:
    """Twilio creates the message, then the worker gets ``outcome`` instead of the 201: a
    5xx, or an exception (the answer lost on the way back)."""

    outcome: Answer | Exception


class FakeTwilio(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """Answers queued answers (or raises queued exceptions) in order; with none queued, a
    create is answered 201 with the message queued (and kept), a list with the kept messages.
    ``now`` dates what it creates (Twilio's clock)."""

    def __init__(self, now: Callable[[], datetime] = lambda: SENT_AT) -> None:
        super().__init__(logging.getLogger(__name__), is_async=False)
        self.requests: list[SentRequest] = []
        self.answers: list[Answer] = []
        # What Twilio holds, oldest first.
        self.messages: list[dict[str, Any]] = []
        self._now = now
        self._queued: deque[Answer | Exception | CreatedThen] = deque()

    def queue(self, *answers: Answer | Exception | CreatedThen) -> None:
        self._queued.extend(answers)

    def mark_sent(self, sid: str, at: datetime | None = None) -> None:
        """Twilio sends a message it kept: ``sent``, and ``date_sent`` set."""
        [message] = [m for m in self.messages if m["sid"] == sid]
        message["status"] = "sent"
        message["date_sent"] = format_datetime(at or self._now())

    @override
    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        sent = SentRequest(method, url, params or {}, data or {}, headers or {}, auth, timeout)
        self.requests.append(sent)
        queued = self._queued.popleft() if self._queued else None
        if isinstance(queued, CreatedThen):
            self._created(sent)
            queued = queued.outcome
        if queued is None:
            queued = self._created(sent) if method == "POST" else self._listed(sent)
        if isinstance(queued, Exception):
            raise queued
        self.answers.append(queued)
        return Response(queued.status, queued.text)

    def _created(self, sent: SentRequest) -> Answer:
        assert sent.method == "POST", f"nothing queued for {sent.method} {sent.url}"
        form = sent.form()
        message = message_json(
            message_sid(len(self.requests)),
            sender=form["From"][0],
            contact=form["To"][0],
            body=form.get("Body", [""])[0],
            num_media=len(form.get("MediaUrl", [])),
            created_at=self._now(),
        )
        self.messages.append(message)
        return Answer(201, dict(message))

    def _listed(self, sent: SentRequest) -> Answer:
        """A page of the kept messages, newest first, filtered as Twilio filters them."""
        query = {**parse_qs(urlsplit(sent.url).query), **sent.query()}
        first = {name: values[0] for name, values in query.items()}
        matching = [
            message
            for message in reversed(self.messages)
            if first.get("To", message["to"]) == message["to"]
            and first.get("From", message["from"]) == message["from"]
            and matches_date_sent(message, first)
        ]
        size = int(first.get("PageSize", "50"))
        page = int(first.get("Page", "0"))
        listed = matching[page * size : (page + 1) * size]
        more = len(matching) > (page + 1) * size
        filters = {k: v for k, v in first.items() if k not in ("Page", "PageSize", "PageToken")}
        next_query = urlencode(
            {**filters, "PageSize": size, "Page": page + 1, "PageToken": f"PA{page + 1}"}
        )
        return Answer(
            200,
            page_json(
                listed,
                page=page,
                page_size=size,
                next_page_uri=f"{messages_path()}?{next_query}" if more else None,
            ),
        )


def message_json(
    sid: str,
    *,
    sender: str,
    contact: str,
    body: str = "",
    status: str = "queued",
    num_media: int = 0,
    sent_at: datetime | None = None,
    created_at: datetime = SENT_AT,
) -> dict[str, Any]:
    """A Message resource as Twilio answers it (dates in RFC 2822, counts as strings)."""
    created = format_datetime(created_at)
    uri = f"{messages_path().removesuffix('.json')}/{sid}"
    return {
        "account_sid": TEST_ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": created,
        "date_sent": format_datetime(sent_at) if sent_at else None,
        "date_updated": created,
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
        "status": status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": contact,
        "uri": f"{uri}.json",
    }


def page_json(
    messages: list[dict[str, Any]],
    *,
    page: int,
    next_page_uri: str | None,
    page_size: int = 50,
) -> dict[str, Any]:
    """A page of the Messages list as Twilio answers it (URIs relative to api.twilio.com)."""
    first = f"{messages_path()}?PageSize={page_size}&Page=0"
    return {
        "end": page * page_size + len(messages) - 1,
        "first_page_uri": first,
        "messages": messages,
        "next_page_uri": next_page_uri,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": first if page else None,
        "start": page * page_size,
        "uri": f"{messages_path()}?PageSize={page_size}&Page={page}",
    }


def error_answer(status: int, code: int, message: str) -> Answer:
    """Twilio's error answer: ``{"code", "message", "more_info", "status"}``."""
    return Answer(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def _decoded(values: dict[str, object]) -> dict[str, list[str]]:
    return parse_qs(urlencode(values, doseq=True), keep_blank_values=True)
