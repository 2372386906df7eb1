"""POST /webhooks/twilio/inbound: Twilio posts every inbound WhatsApp message here."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_gateway.inbound import receive_inbound_message
from whatsapp_gateway.models.inbound import InboundMessage
from whatsapp_gateway.observability import logger, metrics
from whatsapp_gateway.runtime import runtime
from whatsapp_gateway.webhooks import IDEMPOTENCY_HEADER, answer_twilio


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@metrics.log_metrics
@event_source(data_class=APIGatewayProxyEventV2)
def handler(event: APIGatewayProxyEventV2, context: LambdaContext) -> dict[str, Any]:
    deps = runtime()

    def receive(message: InboundMessage) -> None:
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

    # The message's To is the business's sender: it must be the signing account's.
    return answer_twilio(event, deps, InboundMessage, receive, sender_of=lambda m: m.to)
