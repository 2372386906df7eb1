"""Twilio's REST API through the official SDK (Messages, and Content for the templates): the
only module that talks to Twilio.

One REST client per account, built on first use and rebuilt when the account's auth token
changes (a rotation). Every request has an explicit timeout (the SDK's default is none) and goes
to ``TWILIO_API_URL`` instead of Twilio's hosts when that is set. Every failure comes out as one
TwilioCallError that says whether trying again may succeed.
"""

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import override
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ValidationError,
)
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, Timeout
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance

from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.twilio_errors import TwilioCallError, is_retryable
from whatsapp_gateway.models.accounts import TwilioAccount
from whatsapp_gateway.models.content import ContentAndApprovals
from whatsapp_gateway.models.twilio import ListedMessage, SendRequest, SentMessage

# The SDK's HTTP client logs every request's parameters (numbers, bodies) at INFO: its logger
# here keeps warnings only, whoever configures logging.
_HTTP_LOGGER = logging.getLogger(f"{__name__}.http")
_HTTP_LOGGER.setLevel(logging.WARNING)

_CONTENT_FIELDS = tuple(ContentAndApprovals.model_fields)

# The SDK puts this before Twilio's own message when a create is refused.
_SDK_CREATE_PREFIX = "Unable to create record: "

# Reconciling reads the pair's messages a page at a time (Twilio's default page), and gives up
# on telling after this many: one contact's messages go out one at a time.
RECONCILE_PAGE_SIZE = 50
RECONCILE_LISTING_LIMIT = 200


class TwilioRest:
    """Sends and lists messages of any configured account. Safe to share between threads."""

    def __init__(self, settings: TwilioSettings, transport: HttpClient | None = None) -> None:
        """``transport`` replaces the SDK's HTTP client (a fake)."""
        self._http = twilio_http_client(settings, transport)
        self._clients: dict[str, tuple[str, Client]] = {}
        self._lock = threading.Lock()

    def send(self, account: TwilioAccount, request: SendRequest) -> SentMessage:
        """Creates the message at Twilio; raises TwilioCallError when Twilio refuses it or does
        not answer."""
        params: dict[str, object] = {"from_": request.from_.whatsapp, "to": request.to.whatsapp}
        if request.body is not None:
            params["body"] = request.body
        if request.media_urls:
            params["media_url"] = [str(url) for url in request.media_urls]
        if request.content_sid is not None:
            params["content_sid"] = request.content_sid
        if request.content_variables:
            params["content_variables"] = json.dumps(request.content_variables)
        if request.status_callback is not None:
            params["status_callback"] = str(request.status_callback)
        client = self._client(account)
        with _as_call_error():
            created = client.messages.create(**params)
        return SentMessage(sid=created.sid, status=created.status)

    def messages_to(
        self, account: TwilioAccount, sender: Address, contact: Address, since: datetime
    ) -> list[ListedMessage]:
        """The account's messages from ``sender`` to ``contact`` created since ``since``
        (aware), newest first: how an attempt Twilio may have accepted before the worker died
        is reconciled before it is sent again.

        Not filtered by DateSent: Twilio leaves ``date_sent`` null until it actually sends a
        message, and a DateSent filter leaves out every message it still queues. Twilio lists
        newest first (by SID, close to creation time: ``since`` carries the slack), so the
        pages are read until a message created before ``since``; a listing that does not get
        there within RECONCILE_LISTING_LIMIT messages raises a retryable TwilioCallError
        rather than being taken for complete."""
        if since.utcoffset() is None:
            raise ValueError("since must be timezone-aware")
        client = self._client(account)
        found: list[ListedMessage] = []
        with _as_call_error():
            listed = client.messages.stream(
                from_=sender.whatsapp, to=contact.whatsapp, page_size=RECONCILE_PAGE_SIZE
            )
            for message in listed:
                if message.date_created is not None and message.date_created < since:
                    break
                if len(found) == RECONCILE_LISTING_LIMIT:
                    raise TwilioCallError(
                        retryable=True,
                        maybe_sent=True,
                        status=None,
                        code=None,
                        message=f"over {RECONCILE_LISTING_LIMIT} messages to the contact listed",
                    )
                found.append(_listed(message))
        return found

    def templates(self, account: TwilioAccount) -> list[ContentAndApprovals]:
        """Every template of the account with its WhatsApp approval, every page (1,000 a page,
        Twilio's most); raises TwilioCallError when any page fails, so that a partial listing is
        never taken for the whole."""
        client = self._client(account)
        with _as_call_error():
            listed = client.content.v1.content_and_approvals.stream(page_size=1000)
            return [
                ContentAndApprovals.model_validate(
                    {name: getattr(content, name, None) for name in _CONTENT_FIELDS}
                )
                for content in listed
            ]

    def _client(self, account: TwilioAccount) -> Client:
        token = account.auth_token.get_secret_value()
        with self._lock:
            cached = self._clients.get(account.account_sid)
            if cached is None or cached[0] != token:
                cached = (token, Client(account.account_sid, token, http_client=self._http))
                self._clients[account.account_sid] = cached
            return cached[1]


def _listed(message: MessageInstance) -> ListedMessage:
    return ListedMessage(
        sid=message.sid,
        status=message.status,
        date_created=message.date_created,
        body=message.body or "",
    )


def twilio_http_client(settings: TwilioSettings, transport: HttpClient | None = None) -> HttpClient:
    """The HTTP layer of every Twilio REST client (Messages, Content): ``transport``, by default
    the SDK's own with the configured timeout, sent to ``TWILIO_API_URL`` when that is set."""
    transport = transport or TwilioHttpClient(
        timeout=settings.http_timeout_seconds, logger=_HTTP_LOGGER
    )
    return _Redirected(transport, str(settings.api_url)) if settings.api_url else transport


class _Redirected(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """The ``TWILIO_API_URL`` seam: every request goes to ``base_url`` instead of Twilio's host
    (api.twilio.com, content.twilio.com), its path and query kept."""

    def __init__(self, inner: HttpClient, base_url: str) -> None:
        super().__init__(inner.logger, is_async=False, timeout=inner.timeout)
        self._inner = inner
        self._base = base_url.rstrip("/")

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
        target = self._base + parts.path + (f"?{parts.query}" if parts.query else "")
        return self._inner.request(
            method,
            target,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


class _ErrorBody(BaseModel):
    """Twilio's JSON error answer: ``{"code": 20429, "message": "...", "status": 429}``."""

    code: int | None = None
    message: str | None = None


@contextmanager
def _as_call_error() -> Iterator[None]:
    """Twilio's failures as TwilioCallError. The SDK's exceptions are not chained: their text
    holds request URLs, with numbers in a list's query."""
    try:
        yield
    except (Timeout, RequestsConnectionError) as error:
        raise TwilioCallError(
            retryable=is_retryable(status=None, code=None),
            # Unless the connection was never made, the request may have reached Twilio.
            maybe_sent=not isinstance(error, ConnectTimeout),
            status=None,
            code=None,
            message=f"no answer from Twilio ({type(error).__name__})",
        ) from None
    except TwilioException as error:
        refusal = _refusal(error)
        if refusal is None:
            raise
        raise refusal from None


def _refusal(error: TwilioException) -> TwilioCallError | None:
    """The HTTP error answer an SDK exception carries; None for the SDK's own failures."""
    if isinstance(error, TwilioRestException):
        # Without a Twilio code in the answer the SDK repeats the HTTP status as the code.
        code = None if error.code == error.status else error.code
        return _answered(error.status, code, error.msg.removeprefix(_SDK_CREATE_PREFIX))
    if isinstance(error, TwilioServiceException):
        return _answered(error.status, error.code, error.detail or error.title)
    # A list page that is not a 200 comes as a bare TwilioException holding the response.
    response = next((arg for arg in error.args if isinstance(arg, Response)), None)
    if response is None:
        return None
    try:
        body = _ErrorBody.model_validate_json(response.text)
    except ValidationError:
        body = _ErrorBody()
    return _answered(response.status_code, body.code, body.message or "Unable to fetch page")


def _answered(status: int, code: int | None, message: str) -> TwilioCallError:
    return TwilioCallError(
        retryable=is_retryable(status=status, code=code),
        maybe_sent=status >= 500,
        status=status,
        code=code,
        message=message,
    )
