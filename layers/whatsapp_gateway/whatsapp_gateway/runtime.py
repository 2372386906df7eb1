"""The collaborators of the functions, built on first use and kept for the container's life.

Nothing is built at import time: a function pays only for the clients it uses, and tests
replace a collaborator by setting the attribute on ``runtime()``. The adapters that only some
functions use are imported where they are built, so that the webhooks' cold start does not pay
for the send path (the Twilio REST client, idempotency, SQS, the outbound models).
"""

from functools import cache, cached_property
from typing import TYPE_CHECKING

import boto3

from whatsapp_gateway.adapters.dynamodb import GatewayStore
from whatsapp_gateway.adapters.eventbridge import EventBus
from whatsapp_gateway.adapters.twilio_accounts import load_accounts
from whatsapp_gateway.clock import Clock
from whatsapp_gateway.config import (
    ApiSettings,
    EventSettings,
    QueueSettings,
    StateSettings,
    TwilioSettings,
    WebhookSettings,
    WorkerSettings,
)
from whatsapp_gateway.models.accounts import TwilioAccounts
from whatsapp_gateway.observability import count_published

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient

    from whatsapp_gateway.adapters.lambda_invoke import TemplateSyncTrigger
    from whatsapp_gateway.adapters.messages_store import MessagesStore
    from whatsapp_gateway.adapters.sqs import SendQueue
    from whatsapp_gateway.adapters.templates_store import TemplatesStore
    from whatsapp_gateway.adapters.twilio_rest import TwilioRest


class Runtime:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()

    @cached_property
    def _dynamodb(self) -> "DynamoDBClient":
        return boto3.client("dynamodb")

    @cached_property
    def _state_settings(self) -> StateSettings:
        return StateSettings.from_environ()

    @cached_property
    def store(self) -> GatewayStore:
        """The windows, opt-outs and inbound messages."""
        settings = self._state_settings
        return GatewayStore(self._dynamodb, settings.windows_table, settings.messages_table)

    @cached_property
    def messages(self) -> "MessagesStore":
        """Outbound messages."""
        from whatsapp_gateway.adapters.messages_store import MessagesStore  # noqa: PLC0415

        return MessagesStore(self._dynamodb, self._state_settings.messages_table)

    @cached_property
    def templates(self) -> "TemplatesStore":
        """The synced templates."""
        from whatsapp_gateway.adapters.templates_store import TemplatesStore  # noqa: PLC0415

        return TemplatesStore(self._dynamodb, self._state_settings.templates_table)

    @cached_property
    def template_sync(self) -> "TemplateSyncTrigger":
        """Starts the template sync function now, without waiting for it."""
        from whatsapp_gateway.adapters.lambda_invoke import TemplateSyncTrigger  # noqa: PLC0415

        client: LambdaClient = boto3.client("lambda")
        return TemplateSyncTrigger(client, ApiSettings.from_environ().template_sync_function)

    @cached_property
    def queue(self) -> "SendQueue":
        from whatsapp_gateway.adapters.sqs import SendQueue  # noqa: PLC0415

        client: SQSClient = boto3.client("sqs")
        return SendQueue(client, QueueSettings.from_environ().send_queue_url)

    @cached_property
    def idempotency(self) -> "DynamoDBPersistenceLayer":
        """Powertools' idempotency records (the API's Idempotency-Key)."""
        from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415
            DynamoDBPersistenceLayer,
        )

        table = ApiSettings.from_environ().idempotency_table
        return DynamoDBPersistenceLayer(table_name=table, boto3_client=self._dynamodb)

    @cached_property
    def twilio(self) -> "TwilioRest":
        from whatsapp_gateway.adapters.twilio_rest import TwilioRest  # noqa: PLC0415

        return TwilioRest(self.twilio_settings)

    @cached_property
    def events(self) -> EventBus:
        client: EventBridgeClient = boto3.client("events")
        return EventBus(
            client, EventSettings.from_environ().event_bus_name, on_published=count_published
        )

    @cached_property
    def twilio_settings(self) -> TwilioSettings:
        return TwilioSettings.from_environ()

    @cached_property
    def webhook_settings(self) -> WebhookSettings:
        return WebhookSettings.from_environ()

    @cached_property
    def worker_settings(self) -> WorkerSettings:
        return WorkerSettings.from_environ()

    @cached_property
    def _local_accounts(self) -> TwilioAccounts:
        return load_accounts(self.twilio_settings)

    def accounts(self) -> TwilioAccounts:
        """Deployed, re-read on every call (Powertools Parameters caches the secret for its max
        age, so a rotated token arrives); locally, the environment's one account."""
        if self.twilio_settings.accounts_secret:
            return load_accounts(self.twilio_settings)
        return self._local_accounts


@cache
def runtime() -> Runtime:
    return Runtime()
