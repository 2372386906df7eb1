"""The FIFO send queue: one message group per (sender, contact) pair, so a contact's messages
go out in the order they were accepted."""

from typing import TYPE_CHECKING

from whatsapp_gateway.domain.addresses import Address

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MESSAGE_ID_ATTRIBUTE = "message_id"
# SQS caps a message's visibility timeout at 12 hours; retries back off up to 15 minutes.
MAX_RETRY_DELAY_SECONDS = 900


def message_group(sender: Address, contact: Address) -> str:
    """The FIFO group of a pair (what senders enqueueing directly should use too)."""
    return f"{sender.id}/{contact.id}"


class SendQueue:
    def __init__(self, client: "SQSClient", queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def enqueue(self, *, message_id: str, sender: Address, contact: Address, body: str) -> None:
        """Deduplicated by the gateway's message id: enqueueing twice sends once."""
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=body,
            MessageGroupId=message_group(sender, contact),
            MessageDeduplicationId=message_id,
            MessageAttributes={
                MESSAGE_ID_ATTRIBUTE: {"DataType": "String", "StringValue": message_id}
            },
        )

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Holds a failed message (and so its group) back before SQS delivers it again."""
        self._client.change_message_visibility(
            QueueUrl=self._queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=min(seconds, MAX_RETRY_DELAY_SECONDS),
        )
