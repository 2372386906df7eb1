"""POST /webhooks/twilio/status: Twilio's status callbacks of the messages the gateway sent."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_gateway.models.messages import StatusCallback
from whatsapp_gateway.observability import logger, metrics
from whatsapp_gateway.runtime import runtime
from whatsapp_gateway.status_changes import Ignored, receive_status_callback
from whatsapp_gateway.webhooks import answer_twilio

# What an ignored callback logs, and the metric that counts it.
_IGNORED = {
    Ignored.UNTRACKED_STATUS: (
        "status callback with a status the gateway does not track",
        "StatusCallbacksUntracked",
    ),
    Ignored.UNKNOWN_MESSAGE: ("status callback for an unknown message", "StatusCallbacksUnknown"),
    Ignored.NOT_ITS_MESSAGE: ("status callback not of its message", "StatusCallbacksMismatched"),
}


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@metrics.log_metrics
@event_source(data_class=APIGatewayProxyEventV2)
def handler(event: APIGatewayProxyEventV2, context: LambdaContext) -> dict[str, Any]:
    deps = runtime()

    def receive(callback: StatusCallback) -> None:
        logger.set_correlation_id(callback.message_sid)
        message_id = (event.query_string_parameters or {}).get("message_id")
        result = receive_status_callback(
            callback,
            message_id=message_id,
            store=deps.messages,
            conversations=deps.store,
            events=deps.events,
            now=deps.clock.now(),
        )
        if isinstance(result, Ignored):
            # Acknowledged all the same: Twilio would retry an error for ever.
            message, metric = _IGNORED[result]
            log = logger.info if result is Ignored.UNTRACKED_STATUS else logger.warning
            log(
                message,
                extra={"id": message_id, "status": callback.twilio_status, "reason": result},
            )
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
            return
        logger.info("status callback", extra={"status": callback.twilio_status})
        metrics.add_metric(name="StatusCallbacks", unit=MetricUnit.Count, value=1)

    return answer_twilio(event, deps, StatusCallback, receive)
