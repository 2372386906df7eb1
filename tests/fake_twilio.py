"""A fake of Twilio's REST API, injected into the official client as its HTTP layer: it records
every request as the SDK hands it over and answers with bodies shaped like Twilio's 2010
Messages API (the contract tests check them against Twilio's OpenAPI description)."""

import json
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, override
from urllib.parse import parse_qs, urlencode

from twilio.http import HttpClient
from twilio.http.response import Response

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


class FakeTwilio(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """Answers queued answers (or raises queued exceptions) in order; with none queued, a
    message create is answered 201 with the message queued."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger(__name__), is_async=False)
        self.requests: list[SentRequest] = []
        self.answers: list[Answer] = []
        self._queued: deque[Answer | Exception] = deque()

    def queue(self, *answers: Answer | Exception) -> None:
        self._queued.extend(answers)

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
        answer = self._queued.popleft() if self._queued else self._created(sent)
        if isinstance(answer, Exception):
            raise answer
        self.answers.append(answer)
        return Response(answer.status, answer.text)

    def _created(self, sent: SentRequest) -> Answer:
        assert sent.method == "POST", f"nothing queued for {sent.method} {sent.url}"
        form = sent.form()
        return Answer(
            201,
            message_json(
                message_sid(len(self.requests)),
                sender=form["From"][0],
                contact=form["To"][0],
                body=form.get("Body", [""])[0],
                num_media=len(form.get("MediaUrl", [])),
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
) -> dict[str, Any]:
    """A Message resource as Twilio answers it (dates in RFC 2822, counts as strings)."""
    created = format_datetime(SENT_AT)
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
    messages: list[dict[str, Any]], *, page: int, next_page_uri: str | None
) -> dict[str, Any]:
    """A page of the Messages list as Twilio answers it (URIs relative to api.twilio.com)."""
    first = f"{messages_path()}?PageSize=50&Page=0"
    return {
        "end": page * 50 + len(messages) - 1,
        "first_page_uri": first,
        "messages": messages,
        "next_page_uri": next_page_uri,
        "page": page,
        "page_size": 50,
        "previous_page_uri": first if page else None,
        "start": page * 50,
        "uri": f"{messages_path()}?PageSize=50&Page={page}",
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
