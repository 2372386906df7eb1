"""The Twilio accounts the gateway serves, as kept in the accounts secret.

The secret is a JSON document: ``{"accounts": [{"account_sid": "AC...", "auth_token": "...",
"previous_auth_token": "...", "rotated_at": "2026-01-01T00:00:00Z", "senders":
["whatsapp:+14155238886"]}]}``. Each account (or subaccount) has its own WABA and senders.
"""

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.models.fields import ContactAddress

ACCOUNT_SID_PATTERN = r"^AC[0-9a-fA-F]{32}$"


class TwilioAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    account_sid: str = Field(pattern=ACCOUNT_SID_PATTERN)
    auth_token: SecretStr = Field(min_length=1)
    previous_auth_token: SecretStr | None = None
    rotated_at: AwareDatetime | None = None
    senders: tuple[ContactAddress, ...] = ()

    @model_validator(mode="after")
    def _rotation_is_dated(self) -> "TwilioAccount":
        if self.previous_auth_token is not None and self.rotated_at is None:
            raise ValueError("previous_auth_token needs rotated_at (when the token was rotated)")
        return self

    def signing_tokens(self, now: datetime, grace: timedelta) -> list[str]:
        """The auth tokens a genuine webhook may be signed with at ``now``: the current one, and
        the previous one until ``grace`` after the rotation."""
        tokens = [self.auth_token.get_secret_value()]
        if (
            self.previous_auth_token is not None
            and self.rotated_at is not None
            and now < self.rotated_at + grace
        ):
            tokens.append(self.previous_auth_token.get_secret_value())
        return tokens


class TwilioAccounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    accounts: tuple[TwilioAccount, ...] = Field(min_length=1)
    default_sender: ContactAddress | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "TwilioAccounts":
        sids = [account.account_sid for account in self.accounts]
        if len(set(sids)) != len(sids):
            raise ValueError("an account is listed twice")
        senders = [sender for account in self.accounts for sender in account.senders]
        if len(set(senders)) != len(senders):
            raise ValueError("a sender belongs to exactly one account (one WABA)")
        if self.default_sender is not None and self.account_of(self.default_sender) is None:
            raise ValueError(f"default sender {self.default_sender} belongs to no account")
        return self

    def account(self, account_sid: str) -> TwilioAccount | None:
        return next((a for a in self.accounts if a.account_sid == account_sid), None)

    def account_of(self, sender: Address) -> TwilioAccount | None:
        return next((a for a in self.accounts if sender in a.senders), None)

    def sender_or_default(self, sender: Address | None) -> Address | None:
        """The sender a request names, else the default one: configured, or the only sender."""
        if sender is not None:
            return sender
        if self.default_sender is not None:
            return self.default_sender
        senders = [s for account in self.accounts for s in account.senders]
        return senders[0] if len(senders) == 1 else None
