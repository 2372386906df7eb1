"""What every Twilio webhook needs: the form exactly as Twilio sent it, its signature checked
against the public URL with the token of the account named in the form, a TwiML answer, and
bad requests turned into 4xx answers.

The webhooks are public: whatever a request holds, the work before its signature is proven is
bounded (size and number of fields, checked before the body is even decoded) and linear in it.
Webhooks answer Twilio within its 15-second timeout and scale with its traffic, so they are
kept light at cold start: Powertools' data class for the event, not the full event handler.
"""

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ValidationError
from twilio.request_validator import RequestValidator

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.errors import ApiError, describe, error_body
from whatsapp_gateway.models.accounts import TwilioAccount, TwilioAccounts
from whatsapp_gateway.observability import logger, metrics
from whatsapp_gateway.runtime import Runtime

SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio's own forms are a few KB and a few dozen fields; the limits leave a wide margin (the
# reasoning: docs/decisions.md, 2026-12-02).
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 256


class SignatureRejectedError(Exception):
    """The request is not provably from Twilio for the account it names: 403, nothing stored."""


class TwilioForm:
    """Form parameters as received, blank ones kept (all are signed), indexed by name once so
    that RequestValidator's look-up of every name costs the size of the form, not its square."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``: the interface RequestValidator uses for repeated fields."""
        return self._values.get(name, [])

    def __iter__(self) -> Iterator[str]:
        """The field names, each once, in the order first received."""
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def fields(self) -> dict[str, str]:
        """One value per field (the first), for the models."""
        return {name: values[0] for name, values in self._values.items()}


def read_form(event: APIGatewayProxyEventV2) -> TwilioForm:
    """The form body, base64-decoded when API Gateway encoded it. 413 over MAX_FORM_BYTES,
    decided before the body is decoded; 400 over MAX_FORM_FIELDS fields, counted before it is
    parsed, or when it is not a form."""
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise ApiError(
            400, "unsupported_content_type", f"Twilio webhooks are posted as {FORM_CONTENT_TYPE}"
        )
    if _decoded_size(event) > MAX_FORM_BYTES:
        raise ApiError(413, "payload_too_large", f"a Twilio form is at most {MAX_FORM_BYTES} bytes")
    try:
        body = event.decoded_body or ""
        if body.count("&") >= MAX_FORM_FIELDS:
            raise ApiError(
                400, "too_many_fields", f"a Twilio form has at most {MAX_FORM_FIELDS} fields"
            )
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body))
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "malformed_form", "the body is not a valid form") from error
    return TwilioForm(pairs)


def _decoded_size(event: APIGatewayProxyEventV2) -> int:
    """The body's size once decoded, from the raw body's length alone (base64 writes 3 bytes as
    4 characters, the last group padded with '=')."""
    raw = event.body or ""
    if not event.is_base64_encoded:
        return len(raw)
    return len(raw) * 3 // 4 - raw[-2:].count("=")


def public_url(event: APIGatewayProxyEventV2, public_base_url: str | None) -> str:
    """The URL Twilio requested and signed: the configured public base (a tunnel, a custom
    domain) or else the API's own domain, then the path and query as received."""
    base = (public_base_url or f"https://{event.request_context.domain_name}").rstrip("/")
    query = f"?{event.raw_query_string}" if event.raw_query_string else ""
    return f"{base}{event.raw_path}{query}"


def verify_signature(
    event: APIGatewayProxyEventV2,
    form: TwilioForm,
    *,
    accounts: TwilioAccounts,
    url: str,
    now: datetime,
    grace: timedelta,
) -> TwilioAccount:
    """The account that signed: raises SignatureRejectedError unless the signature matches a
    current (or, during a rotation's grace period, the previous) auth token of the account the
    form names."""
    signature = event.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise SignatureRejectedError("missing signature")
    account = accounts.account(next(iter(form.getlist("AccountSid")), ""))
    if account is None:
        raise SignatureRejectedError("unknown account")
    if not any(
        RequestValidator(token).validate(url, form, signature)
        for token in account.signing_tokens(now, grace)
    ):
        raise SignatureRejectedError("signature mismatch")
    return account


def answer_twilio[Form: BaseModel](
    event: APIGatewayProxyEventV2,
    deps: Runtime,
    form_model: type[Form],
    handle: Callable[[Form], None],
    *,
    sender_of: Callable[[Form], Address] | None = None,
) -> dict[str, Any]:
    """Checks the request is Twilio's, parses its form into ``form_model``, hands it to
    ``handle`` and answers: 200 with empty TwiML, 403 for a bad signature (or, with
    ``sender_of``, a sender that is not the signing account's: one account's token cannot speak
    for another's sender), 400 for a form that is not one or does not fit the model, 413 for
    one too large. Whatever ``handle`` raises propagates: the 5xx makes Twilio retry, so a
    failure after the checks never loses a message."""
    try:
        form = read_form(event)
        account = verify_signature(
            event,
            form,
            accounts=deps.accounts(),
            url=public_url(event, deps.webhook_settings.public_base),
            now=deps.clock.now(),
            grace=deps.webhook_settings.auth_token_grace,
        )
        parsed = form_model.model_validate(form.fields())
        if sender_of is not None and sender_of(parsed) not in account.senders:
            raise SignatureRejectedError("sender not of the signing account")
    except SignatureRejectedError as error:
        logger.warning("Twilio signature rejected", extra={"reason": str(error)})
        metrics.add_metric(name="WebhookSignatureRejected", unit=MetricUnit.Count, value=1)
        # Plain text on purpose: a forged request learns nothing about the gateway.
        return _answer(403, "text/plain", "Forbidden")
    except ValidationError as error:
        return _answer(400, "application/json", error_body("invalid_request", describe(error)))
    except ApiError as error:
        return _answer(error.status, "application/json", error_body(error.code, error.message))
    handle(parsed)
    return _answer(200, "text/xml", EMPTY_TWIML)


def _answer(status: int, content_type: str, body: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "body": body}
