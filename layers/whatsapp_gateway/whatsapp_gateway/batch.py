"""SQS FIFO batches processed one message group at a time per thread: different contacts'
messages go out concurrently (bounded), one contact's in order.

Each group runs through Powertools' ``SqsFifoPartialProcessor`` with ``skip_group_on_error``: a
failure holds back its own group's later records and no other group's. The failures of every
group make up the batch's ``batchItemFailures`` (the event source's ReportBatchItemFailures).
"""

import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext


def process_fifo_groups_concurrently(
    event: dict[str, Any],
    record_handler: Callable[[SQSRecord], object],
    *,
    max_workers: int,
    context: LambdaContext,
) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in event.get("Records", []):
        groups.setdefault(record["attributes"]["MessageGroupId"], []).append(record)

    def process(records: list[dict[str, Any]]) -> list[Any]:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        # A group that fails whole is one group of the batch, reported like any other.
        processor.raise_on_entire_batch_failure = False
        response = process_partial_response(
            event={"Records": records},
            record_handler=record_handler,
            processor=processor,
            context=context,
        )
        return list(response.get("batchItemFailures", []))

    if not groups:
        return {"batchItemFailures": []}
    with ThreadPoolExecutor(max_workers=min(max_workers, len(groups))) as pool:
        failures = [failure for group in pool.map(process, groups.values()) for failure in group]
    return {"batchItemFailures": failures}


def failure_fields(error: BaseException, frames: int = 8) -> dict[str, object]:
    """What a log line says of a record that failed unexpectedly: the error's type and where it
    was raised (the innermost ``frames`` of its traceback), and never its text, which may quote
    a phone number, a body or a request URL. A wrapped error (``raise ... from``) is described
    by its cause."""
    cause = error.__cause__ or error
    return {
        "error_type": type(cause).__name__,
        "error_at": [
            f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
            for frame in traceback.extract_tb(cause.__traceback__)[-frames:]
        ],
    }
