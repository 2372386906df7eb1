"""What every Twilio webhook needs: the form exactly as Twilio sent it, its signature checked
against the public URL with the token of the account named in the form, a TwiML answer, and
bad requests turned into 4xx answers.

Webhooks answer Twilio within its 15-second timeout and scale with its traffic, so they are
kept light at cold start: Powertools' data class for the event, not the full event handler.
"""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ValidationError
from twilio.request_validator import RequestValidator

from whatsapp_gateway.errors import ApiError, describe, error_body
from whatsapp_gateway.models.accounts import TwilioAccounts
from whatsapp_gateway.observability import logger, metrics
from whatsapp_gateway.runtime import Runtime

SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


class SignatureRejectedError(Exception):
    """The request is not provably from Twilio: 403, nothing stored."""


class TwilioForm:
    """Form parameters in the order and number received, blank ones kept (all are signed)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``: the interface RequestValidator uses for repeated fields."""
        return [value for key, value in self.pairs if key == name]

    def __iter__(self) -> Iterator[str]:
        """The field names, each once (RequestValidator sorts and signs them)."""
        return iter(dict.fromkeys(key for key, _ in self.pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def fields(self) -> dict[str, str]:
        """One value per field (the first), for the models."""
        fields: dict[str, str] = {}
        for key, value in self.pairs:
            fields.setdefault(key, value)
        return fields


def read_form(event: APIGatewayProxyEventV2) -> TwilioForm:
    """The form body, base64-decoded when API Gateway encoded it; 400 when it is not a form."""
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise ApiError(
            400, "unsupported_content_type", f"Twilio webhooks are posted as {FORM_CONTENT_TYPE}"
        )
    try:
        body = event.decoded_body or ""
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body))
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "malformed_form", "the body is not a valid form") from error
    return TwilioForm(pairs)


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
) -> None:
    """Raises SignatureRejectedError unless the signature matches a current (or, during a
    rotation's grace period, the previous) auth token of the account the form names."""
    signature = event.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise SignatureRejectedError("missing signature")
    account = accounts.account(form.fields().get("AccountSid", ""))
    if account is None:
        raise SignatureRejectedError("unknown account")
    if not any(
        RequestValidator(token).validate(url, form, signature)
        for token in account.signing_tokens(now, grace)
    ):
        raise SignatureRejectedError("signature mismatch")


def answer_twilio[Form: BaseModel](
    event: APIGatewayProxyEventV2,
    deps: Runtime,
    form_model: type[Form],
    handle: Callable[[Form], None],
) -> dict[str, Any]:
    """Checks the request is Twilio's, parses its form into ``form_model``, hands it to
    ``handle`` and answers: 200 with empty TwiML, 403 for a bad signature, 400 for a form that
    is not one or does not fit the model. Whatever ``handle`` raises propagates: the 5xx makes
    Twilio retry, so a failure after the checks never loses a message."""
    try:
        form = read_form(event)
        verify_signature(
            event,
            form,
            accounts=deps.accounts(),
            url=public_url(event, deps.webhook_settings.public_base),
            now=deps.clock.now(),
            grace=deps.webhook_settings.auth_token_grace,
        )
        parsed = form_model.model_validate(form.fields())
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
