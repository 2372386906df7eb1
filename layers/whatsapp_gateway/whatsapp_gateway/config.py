"""Settings read from the environment at cold start, validated by pydantic.

Each function reads only the groups it uses, so a missing variable fails at cold start with
the variable named, and the template sets exactly what each function reads.
"""

import os
from datetime import timedelta
from typing import Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_environ(cls) -> Self:
        # An empty variable (a template parameter left blank) means "not set".
        return cls.model_validate({name: value for name, value in os.environ.items() if value})


class StateSettings(_EnvSettings):
    """The DynamoDB tables."""

    windows_table: str = Field(alias="WINDOWS_TABLE", min_length=1)
    messages_table: str = Field(alias="MESSAGES_TABLE", min_length=1)
    templates_table: str = Field(alias="TEMPLATES_TABLE", min_length=1)


class QueueSettings(_EnvSettings):
    send_queue_url: str = Field(alias="SEND_QUEUE_URL", min_length=1)


class ApiSettings(_EnvSettings):
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    template_sync_function: str = Field(alias="TEMPLATE_SYNC_FUNCTION", min_length=1)


class WorkerSettings(_EnvSettings):
    """The send worker: how many contacts it sends to at once, how often it tries, and the
    public URL Twilio's status callbacks go to."""

    send_concurrency: int = Field(10, alias="SEND_CONCURRENCY", ge=1, le=10)
    max_send_attempts: int = Field(5, alias="MAX_SEND_ATTEMPTS", ge=1)
    public_base_url: AnyHttpUrl = Field(alias="PUBLIC_BASE_URL")

    def status_callback_url(self, message_id: str) -> str:
        base = str(self.public_base_url).rstrip("/")
        return f"{base}/webhooks/twilio/status?message_id={message_id}"


class EventSettings(_EnvSettings):
    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)


class TwilioSettings(_EnvSettings):
    """Twilio accounts: deployed, a Secrets Manager secret; locally, one account from env."""

    accounts_secret: str | None = Field(None, alias="TWILIO_ACCOUNTS_SECRET")
    account_sid: str | None = Field(None, alias="TWILIO_ACCOUNT_SID")
    auth_token: str | None = Field(None, alias="TWILIO_AUTH_TOKEN", repr=False)
    default_sender: str | None = Field(None, alias="WHATSAPP_FROM")
    secret_max_age_seconds: int = Field(300, alias="TWILIO_SECRET_MAX_AGE_SECONDS", ge=0)
    # When set, every Twilio REST call (Messages, Content) goes to this base URL: the fakes' seam.
    api_url: AnyHttpUrl | None = Field(None, alias="TWILIO_API_URL")
    # The SDK waits forever by default; this must stay shorter than the send worker's timeout.
    http_timeout_seconds: float = Field(5.0, alias="TWILIO_HTTP_TIMEOUT_SECONDS", gt=0)


class WebhookSettings(_EnvSettings):
    """The externally visible base URL Twilio signs (empty: the API's own domain)."""

    public_base_url: AnyHttpUrl | None = Field(None, alias="PUBLIC_BASE_URL")
    auth_token_grace_seconds: int = Field(3600, alias="TWILIO_AUTH_TOKEN_GRACE_SECONDS", ge=0)

    @property
    def public_base(self) -> str | None:
        return str(self.public_base_url) if self.public_base_url else None

    @property
    def auth_token_grace(self) -> timedelta:
        """How long after a rotation the previous auth token's signatures are accepted."""
        return timedelta(seconds=self.auth_token_grace_seconds)
