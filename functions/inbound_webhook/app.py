"""POST /webhooks/twilio/inbound: Twilio posts every inbound WhatsApp message here."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_gateway.http import register_error_handlers
from whatsapp_gateway.inbound import receive_inbound_message
from whatsapp_gateway.models.inbound import InboundMessage
from whatsapp_gateway.observability import logger, metrics
from whatsapp_gateway.runtime import runtime
from whatsapp_gateway.webhooks import (
    IDEMPOTENCY_HEADER,
    SignatureRejectedError,
    empty_twiml,
    forbidden,
    public_url,
    read_form,
    verify_signature,
)

app = APIGatewayHttpResolver()
register_error_handlers(app)


@app.exception_handler(SignatureRejectedError)
def _reject(error: SignatureRejectedError) -> Response[str]:
    logger.warning("Twilio signature rejected", extra={"reason": str(error)})
    metrics.add_metric(name="WebhookSignatureRejected", unit=MetricUnit.Count, value=1)
    return forbidden()


@app.post("/webhooks/twilio/inbound")
def receive() -> Response[str]:
    event, deps = app.current_event, runtime()
    form = read_form(event)
    verify_signature(
        event,
        form,
        accounts=deps.accounts(),
        url=public_url(event, deps.webhook_settings.public_base),
        now=deps.clock.now(),
        grace=deps.webhook_settings.auth_token_grace,
    )
    message = InboundMessage.model_validate(form.fields())
    logger.set_correlation_id(message.message_sid)
    record = receive_inbound_message(
        message,
        received_at=deps.clock.now(),
        idempotency_token=event.headers.get(IDEMPOTENCY_HEADER),
        store=deps.store,
        events=deps.events,
    )
    logger.info(
        "inbound message recorded",
        extra={"contact": message.from_.masked, "duplicate": record.duplicate},
    )
    metrics.add_metric(
        name="InboundDuplicates" if record.duplicate else "InboundMessages",
        unit=MetricUnit.Count,
        value=1,
    )
    return empty_twiml()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
