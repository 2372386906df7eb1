"""The send dead-letter queue's consumer: every message SQS gave up on ends failed."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_gateway.adapters.sqs import MESSAGE_ID_ATTRIBUTE
from whatsapp_gateway.batch import failure_fields
from whatsapp_gateway.dead_letters import end_dead_lettered
from whatsapp_gateway.observability import logger, metrics, tracer
from whatsapp_gateway.runtime import runtime


def end_record(record: SQSRecord) -> None:
    deps = runtime()
    attribute = record.message_attributes[MESSAGE_ID_ATTRIBUTE]
    # As the worker names it: the API's id, or the SQS message id (kept by the move to the DLQ).
    message_id = (attribute.string_value if attribute else None) or record.message_id
    logger.append_keys(message_id=message_id)
    try:
        ended = end_dead_lettered(
            record.body,
            message_id=message_id,
            accounts=deps.accounts(),
            store=deps.messages,
            conversations=deps.store,
            events=deps.events,
            now=deps.clock.now(),
        )
    except Exception as error:
        # Left in the queue, delivered again after its visibility timeout.
        logger.error("dead letter not recorded", extra=failure_fields(error))
        raise
    logger.warning("message dead-lettered", extra={"failed_now": ended is not None})
    metrics.add_metric(name="MessagesDeadLettered", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer().capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # A FIFO queue: a failed record holds back the later ones of its group only.
    return process_partial_response(
        event=event,
        record_handler=end_record,
        processor=SqsFifoPartialProcessor(skip_group_on_error=True),
        context=context,
    )
