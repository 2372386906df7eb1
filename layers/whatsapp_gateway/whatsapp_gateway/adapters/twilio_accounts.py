"""The Twilio accounts and their auth tokens: deployed, from the accounts secret in Secrets
Manager (through Powertools Parameters, cached); locally, one account from the environment."""

from aws_lambda_powertools.utilities import parameters

from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.models.accounts import TwilioAccounts


class AccountsConfigError(RuntimeError):
    """Neither the accounts secret nor a local account is configured."""


def load_accounts(settings: TwilioSettings) -> TwilioAccounts:
    """The configured accounts; cached for ``secret_max_age_seconds`` when from the secret, so a
    rotated token is picked up without a redeploy."""
    if settings.accounts_secret:
        document = parameters.get_secret(
            settings.accounts_secret, transform="json", max_age=settings.secret_max_age_seconds
        )
        if not isinstance(document, dict):
            raise AccountsConfigError("the accounts secret must hold a JSON object")
        if settings.default_sender:
            document = {**document, "default_sender": settings.default_sender}
        return TwilioAccounts.model_validate(document)
    if settings.account_sid and settings.auth_token:
        return TwilioAccounts.model_validate(
            {
                "accounts": [
                    {
                        "account_sid": settings.account_sid,
                        "auth_token": settings.auth_token,
                        "senders": [settings.default_sender] if settings.default_sender else [],
                    }
                ],
                "default_sender": settings.default_sender,
            }
        )
    raise AccountsConfigError(
        "set TWILIO_ACCOUNTS_SECRET (deployed) or TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    )
