"""The collaborators of the functions, built on first use and kept for the container's life.

Nothing is built at import time: a function pays only for the clients it uses, and tests
replace a collaborator by setting the attribute on ``runtime()``.
"""

from functools import cache, cached_property
from typing import TYPE_CHECKING

import boto3

from whatsapp_gateway.adapters.dynamodb import GatewayStore
from whatsapp_gateway.adapters.eventbridge import EventBus
from whatsapp_gateway.adapters.twilio_accounts import load_accounts
from whatsapp_gateway.clock import Clock
from whatsapp_gateway.config import EventSettings, StateSettings, TwilioSettings, WebhookSettings
from whatsapp_gateway.models.accounts import TwilioAccounts

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient


class Runtime:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()

    @cached_property
    def store(self) -> GatewayStore:
        settings = StateSettings.from_environ()
        client: DynamoDBClient = boto3.client("dynamodb")
        return GatewayStore(client, settings.windows_table, settings.messages_table)

    @cached_property
    def events(self) -> EventBus:
        client: EventBridgeClient = boto3.client("events")
        return EventBus(client, EventSettings.from_environ().event_bus_name)

    @cached_property
    def twilio_settings(self) -> TwilioSettings:
        return TwilioSettings.from_environ()

    @cached_property
    def webhook_settings(self) -> WebhookSettings:
        return WebhookSettings.from_environ()

    def accounts(self) -> TwilioAccounts:
        """Re-read on every call: Powertools Parameters caches the secret for its max age."""
        return load_accounts(self.twilio_settings)


@cache
def runtime() -> Runtime:
    return Runtime()
