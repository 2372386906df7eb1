"""The send dead-letter queue's consumer on moto: whatever SQS gives up on (the safety net behind
the worker's own attempts) ends ``failed`` with ``dead_lettered`` and its event, once, and leaves
the queue; a message that was sent or ended is left as it is."""

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from send_dead_letters import app as dead_letters
from tests.fake_twilio import FakeTwilio
from tests.integration.conftest import (
    CapturedEvents,
    LambdaContext,
    SendQueueDriver,
    emitted_dimensioned_metrics,
    post_message,
)
from tests.integration.test_send_worker import (
    CONTACT,
    failures,
    open_window,
    status_events,
    stored,
)
from whatsapp_gateway.observability import logger
from whatsapp_gateway.runtime import Runtime

# What the worker itself gives up after (MAX_SEND_ATTEMPTS) is well under SQS's safety net;
# the tests lower the net to reach it in a few deliveries.
SAFETY_NET = 3


@pytest.fixture
def dead_letter_queue(gateway: Runtime, lambda_context: LambdaContext) -> SendQueueDriver:
    """Lambda's event source on the send DLQ, handing batches to the consumer."""
    return SendQueueDriver(
        dead_letters.handler, lambda_context, gateway.clock, queue_url=os.environ["SEND_DLQ_URL"]
    )


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """The functions' JSON log lines (Powertools Logger's stream, as Lambda prints it)."""
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    printed_to = handler.setStream(stream)
    yield stream
    handler.setStream(printed_to)


def lower_the_safety_net() -> None:
    sqs = boto3.client("sqs")
    send_queue_url = os.environ["SEND_QUEUE_URL"]
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=os.environ["SEND_DLQ_URL"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": SAFETY_NET}
    sqs.set_queue_attributes(
        QueueUrl=send_queue_url, Attributes={"RedrivePolicy": json.dumps(policy)}
    )


def dead_letter(send_queue: SendQueueDriver) -> None:
    """SQS gives up on every message of the send queue: received by no worker that finishes
    (a timeout each time), until the safety net moves them to the dead-letter queue."""
    lower_the_safety_net()
    for _ in range(SAFETY_NET + 1):
        send_queue.receive_event()
        send_queue.make_visible()
    assert send_queue.depth() == 0


def accept_reply(text: str = "Your order shipped") -> str:
    status, answer = post_message({"to": CONTACT, "body": text})
    assert status == 202, answer
    return str(answer["id"])


def test_a_message_left_accepted_in_the_dead_letter_queue_ends_failed_and_announced(
    gateway: Runtime,
    send_queue: SendQueueDriver,
    dead_letter_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    capsys: pytest.CaptureFixture[str],
):
    # Given a reply accepted by the API whose SQS message the worker never finished
    open_window()
    message_id = accept_reply()
    captured_events.drain()
    dead_letter(send_queue)
    assert stored(gateway, message_id).status == "accepted"
    capsys.readouterr()

    # When the consumer runs on the dead-letter queue
    answer = dead_letter_queue.run()

    # Then the message ends failed, dead-lettered, and the bus is told
    assert failures(answer) == []
    message = stored(gateway, message_id)
    assert (message.status, message.error_code) == ("failed", "dead_lettered")
    [changed] = status_events(captured_events)
    assert (changed["message_id"], changed["status"]) == (message_id, "failed")
    assert (changed["previous_status"], changed["error_code"]) == ("accepted", "dead_lettered")
    assert changed["contact"] == CONTACT
    # and its SQS message is deleted (its request stays in the messages table)
    assert dead_letter_queue.depth() == 0
    assert message.body == "Your order shipped"
    # and it is counted, for the alarm
    metrics = [name for name, _ in emitted_dimensioned_metrics(capsys.readouterr().out)]
    assert metrics.count("MessagesDeadLettered") == 1


def test_a_dead_letter_delivered_again_changes_nothing_and_announces_nothing_more(
    gateway: Runtime,
    send_queue: SendQueueDriver,
    dead_letter_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context: LambdaContext,
):
    # Given a dead-lettered message the consumer has ended
    open_window()
    message_id = accept_reply()
    dead_letter(send_queue)
    event = dead_letter_queue.receive_event()
    dead_letter_queue.deliver(event)
    before = stored(gateway, message_id)
    captured_events.drain()

    # When SQS hands the same record to the consumer again (at-least-once delivery)
    answer = dead_letters.handler(event, lambda_context)

    # Then nothing changes and nothing more is announced
    assert failures(answer) == []
    assert stored(gateway, message_id) == before
    assert status_events(captured_events) == []


def test_a_message_sent_before_its_copy_was_dead_lettered_is_left_as_it_is(
    gateway: Runtime,
    fake_twilio: FakeTwilio,
    send_queue: SendQueueDriver,
    dead_letter_queue: SendQueueDriver,
    captured_events: CapturedEvents,
):
    # Given a reply the worker sent and recorded
    open_window()
    message_id = accept_reply()
    assert failures(send_queue.run()) == []
    sent = stored(gateway, message_id)
    assert sent.status == "queued"
    # and a copy of its SQS message that SQS gave up on all the same (a worker timed out
    # after recording the send, before the record was deleted, on every delivery)
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["SEND_DLQ_URL"],
        MessageBody=json.dumps({"to": CONTACT, "body": "Your order shipped"}),
        MessageGroupId="+14155238886/+15005550006",
        MessageDeduplicationId=message_id,
        MessageAttributes={"message_id": {"DataType": "String", "StringValue": message_id}},
    )
    captured_events.drain()

    # When the consumer runs
    answer = dead_letter_queue.run()

    # Then the message keeps its status and SID, nothing is announced, and the record is gone
    assert failures(answer) == []
    assert stored(gateway, message_id) == sent
    assert status_events(captured_events) == []
    assert dead_letter_queue.depth() == 0
    assert len(fake_twilio.requests) == 1


def test_a_message_enqueued_directly_and_never_recorded_ends_failed_with_its_event(
    gateway: Runtime,
    send_queue: SendQueueDriver,
    dead_letter_queue: SendQueueDriver,
    captured_events: CapturedEvents,
):
    # Given a message another AWS service enqueued, dead-lettered before any worker recorded it
    sqs_message_id = send_queue.enqueue_directly(json.dumps({"to": CONTACT, "body": "Hi"}))
    dead_letter(send_queue)
    assert gateway.messages.message_view(sqs_message_id) is None

    # When the consumer runs
    dead_letter_queue.run()

    # Then it is recorded failed, as what it was, under its SQS message id, and announced
    message = stored(gateway, sqs_message_id)
    assert (message.status, message.error_code) == ("failed", "dead_lettered")
    assert (message.to, message.from_) == (f"whatsapp:{CONTACT}", "whatsapp:+14155238886")
    [changed] = status_events(captured_events)
    assert (changed["message_id"], changed["contact"]) == (sqs_message_id, CONTACT)
    assert dead_letter_queue.depth() == 0


@pytest.mark.parametrize(
    "body",
    ["{not json", json.dumps({"to": "not a number", "body": "Hi"}), " "],
    ids=["bad-json", "bad-to", "blank"],
)
def test_a_dead_letter_that_is_no_message_is_recorded_failed_and_deleted(
    gateway: Runtime,
    send_queue: SendQueueDriver,
    dead_letter_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    body: str,
):
    # Given something that is not a message to send, enqueued directly and dead-lettered
    sqs = boto3.client("sqs")
    sqs_message_id = sqs.send_message(
        QueueUrl=os.environ["SEND_DLQ_URL"],
        MessageBody=body,
        MessageGroupId="some-group",
        MessageDeduplicationId="d-1",
    )["MessageId"]

    # When the consumer runs
    answer = dead_letter_queue.run()

    # Then it is recorded failed under its SQS message id, with no event (no contact to name)
    assert failures(answer) == []
    message = stored(gateway, sqs_message_id)
    assert (message.status, message.error_code) == ("failed", "dead_lettered")
    assert status_events(captured_events) == []
    assert dead_letter_queue.depth() == 0


def test_a_dead_letter_the_consumer_cannot_record_stays_is_logged_and_is_ended_later(
    gateway: Runtime,
    send_queue: SendQueueDriver,
    dead_letter_queue: SendQueueDriver,
    captured_events: CapturedEvents,
    lambda_context: LambdaContext,
    logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given a dead-lettered reply, and the bus failing
    open_window()
    message_id = accept_reply()
    dead_letter(send_queue)
    captured_events.drain()
    bus = gateway.events
    publish = bus.publish

    def failing(events: Any) -> None:
        raise RuntimeError("bus unavailable")

    monkeypatch.setattr(bus, "publish", failing)

    # When the consumer runs on it: the invocation fails (Lambda's Errors, the alarm)
    event = dead_letter_queue.receive_event()
    with pytest.raises(BatchProcessingError):
        dead_letters.handler(event, lambda_context)

    # Then the record stays in the queue, and an ERROR line names the message, not its content
    dead_letter_queue.make_visible()
    assert dead_letter_queue.depth() == 1
    [error] = [
        line for line in map(json.loads, logs.getvalue().splitlines()) if line["level"] == "ERROR"
    ]
    assert error["message_id"] == message_id
    assert error["error_type"] == "RuntimeError"
    assert "5005550006" not in json.dumps(error)
    assert "Your order shipped" not in json.dumps(error)

    # When the bus is back and SQS delivers the record again
    monkeypatch.setattr(bus, "publish", publish)
    answer = dead_letter_queue.run()

    # Then the failure recorded the first time is announced, once, and the record is deleted
    assert failures(answer) == []
    [changed] = status_events(captured_events)
    assert (changed["message_id"], changed["error_code"]) == (message_id, "dead_lettered")
    assert dead_letter_queue.depth() == 0
