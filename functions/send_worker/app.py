"""The send worker: SQS FIFO batches of messages to send, through Twilio."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_gateway.adapters.sqs import MESSAGE_ID_ATTRIBUTE
from whatsapp_gateway.batch import failure_fields, process_fifo_groups_concurrently
from whatsapp_gateway.observability import logger, metrics, tracer
from whatsapp_gateway.runtime import runtime
from whatsapp_gateway.sending import (
    RetryLaterError,
    SendOutcome,
    UnexpectedSendError,
    give_up_if_exhausted,
    send_queued_message,
)


def send_record(record: SQSRecord) -> SendOutcome:
    deps = runtime()
    settings = deps.worker_settings
    attribute = record.message_attributes[MESSAGE_ID_ATTRIBUTE]
    # Enqueued by the API: the id it answered; enqueued directly: the SQS message id.
    message_id = (attribute.string_value if attribute else None) or record.message_id
    # Records of different contacts are handled on threads of their own.
    logger.thread_safe_append_keys(
        message_id=message_id, receive_count=int(record.attributes.approximate_receive_count)
    )
    try:
        outcome = send_queued_message(
            record.body,
            message_id=message_id,
            max_attempts=settings.max_send_attempts,
            accounts=deps.accounts(),
            state=deps.store,
            templates=deps.templates,
            store=deps.messages,
            conversations=deps.store,
            events=deps.events,
            twilio=deps.twilio,
            status_callback_url=settings.status_callback_url(message_id),
            now=deps.clock.now(),
        )
    except RetryLaterError as retry:
        logger.warning("send deferred", extra={"reason": str(retry)})
        metrics.add_metric(name="SendsDeferred", unit=MetricUnit.Count, value=1)
        deps.queue.retry_later(record.receipt_handle, retry.delay_seconds)
        raise
    except Exception as error:
        # Counted attempts; None when it failed before the message could even be counted.
        attempts = error.attempts if isinstance(error, UnexpectedSendError) else None
        logger.error("send failed", extra={"attempts": attempts, **failure_fields(error)})
        metrics.add_metric(name="SendErrors", unit=MetricUnit.Count, value=1)
        if isinstance(error, UnexpectedSendError) and give_up_if_exhausted(
            error,
            message_id,
            max_attempts=settings.max_send_attempts,
            store=deps.messages,
            conversations=deps.store,
            events=deps.events,
            now=deps.clock.now(),
        ):
            # Ended failed: consumed, so that the contact's later messages go out.
            metrics.add_metric(name="Sends_exhausted", unit=MetricUnit.Count, value=1)
            return SendOutcome.EXHAUSTED
        raise
    logger.info("message handled", extra={"outcome": outcome.value})
    metrics.add_metric(name=f"Sends_{outcome.value}", unit=MetricUnit.Count, value=1)
    return outcome


@logger.inject_lambda_context(clear_state=True)
@tracer().capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_fifo_groups_concurrently(
        event,
        send_record,
        max_workers=runtime().worker_settings.send_concurrency,
        context=context,
    )
