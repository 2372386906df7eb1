"""A fake of Twilio's Content API (``GET /v1/ContentAndApprovals``), injected into the official
client as its HTTP layer: it serves the templates it holds in pages shaped as
``twilio_content_v1.json`` describes them, following the SDK through ``meta.next_page_url``, and
can be told to fail a page."""

import json
import logging
from dataclasses import dataclass, field
from typing import Any, override
from urllib.parse import parse_qs, urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response

from tests.conftest import TEST_ACCOUNT_SID

CONTENT_HOST = "https://content.twilio.com"
LISTING_PATH = "/v1/ContentAndApprovals"


def content_sid(number: int) -> str:
    return f"HX{number:032x}"


def approval(
    status: str = "approved",
    category: str = "UTILITY",
    *,
    nested: bool = False,
    rejection_reason: str = "",
) -> dict[str, Any]:
    """A WhatsApp approval in one of Twilio's two shapes: flat, as ContentAndApprovals gives
    it, or nested under ``whatsapp``, as ApprovalRequests does."""
    flat = {
        "name": "template",
        "category": category,
        "content_type": "twilio/text",
        "status": status,
        "rejection_reason": rejection_reason,
        "allow_category_change": False,
    }
    return {"whatsapp": flat} if nested else flat


def content(
    number: int,
    *,
    name: str | None = None,
    language: str = "en",
    body: str = "Hello {{1}}, your order {{2}} has shipped",
    approval_requests: dict[str, Any] | None = None,
    types: dict[str, Any] | None = None,
    account_sid: str = TEST_ACCOUNT_SID,
) -> dict[str, Any]:
    """A ContentAndApprovals item as Twilio answers it."""
    return {
        "date_created": "2026-11-01T10:00:00Z",
        "date_updated": "2026-11-02T10:00:00Z",
        "sid": content_sid(number),
        "account_sid": account_sid,
        "friendly_name": name or f"template_{number}",
        "language": language,
        "variables": {"1": "Ada", "2": "A-1001"},
        "types": types if types is not None else {"twilio/text": {"body": body}},
        "approval_requests": approval() if approval_requests is None else approval_requests,
    }


@dataclass
class FakeContent(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """Serves ``contents`` ``page_size`` at a time (the gateway asks for 1,000; the fake
    may serve fewer to make pages), failing the pages listed in ``failing_pages`` with
    ``failure``, and recording every request."""

    contents: list[dict[str, Any]] = field(default_factory=list)
    page_size: int | None = None
    failing_pages: set[int] = field(default_factory=set)
    failure: tuple[int, dict[str, Any]] = (
        500,
        {"code": 20500, "message": "Internal Server Error", "status": 500},
    )
    requests: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(logging.getLogger(__name__), is_async=False)

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
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query.update({k: str(v) for k, v in (params or {}).items()})
        self.requests.append(f"{method} {parts.path}?{json.dumps(query, sort_keys=True)}")
        assert (method, parts.path) == ("GET", LISTING_PATH), f"not served: {method} {url}"
        page = int(query.get("Page", "0"))
        if page in self.failing_pages:
            status, body = self.failure
            return Response(status, json.dumps(body))
        size = self.page_size or int(query.get("PageSize", "50"))
        answer = self.page(page, size)
        self.answers.append(answer)
        return Response(200, json.dumps(answer))

    def page(self, page: int, size: int) -> dict[str, Any]:
        """Page ``page`` of the listing, with Twilio's ``meta`` (absolute URLs)."""
        start = page * size
        last = start + size >= len(self.contents)
        url = f"{CONTENT_HOST}{LISTING_PATH}?PageSize={size}"
        return {
            "contents": self.contents[start : start + size],
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": f"{url}&Page=0",
                "previous_page_url": f"{url}&Page={page - 1}&PageToken=PT{page - 1}"
                if page
                else None,
                "url": f"{url}&Page={page}",
                "next_page_url": None if last else f"{url}&Page={page + 1}&PageToken=PT{page + 1}",
                "key": "contents",
            },
        }
