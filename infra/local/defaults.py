"""The local stack's settings: the environment's, else obviously fake ones (Twilio's test
numbers), so that `make local` and `make inbound` agree without any configuration."""

import os

LOCAL_ACCOUNT_SID = "AC" + "0" * 31 + "1"
LOCAL_AUTH_TOKEN = "local-auth-token"  # noqa: S105  (a placeholder for the stand-in)
LOCAL_SENDER = "whatsapp:+14155238886"  # the Twilio Sandbox for WhatsApp's number
# What `make local` reads from its environment: what a test or a benchmark leaves out when it
# starts a stack of its own, on its own defaults (real Twilio credentials here would make the
# stack send through Twilio) and the ports it chooses.
STACK_SETTINGS = frozenset(
    {
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "WHATSAPP_FROM",
        "TWILIO_API_URL",
        "PUBLIC_BASE_URL",
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "PORT",
        "MOTO_PORT",
        "TWILIO_PORT",
        "LOG_LEVEL",
    }
)


def port() -> int:
    return int(os.environ.get("PORT", "3000"))


def gateway_url() -> str:
    return f"http://127.0.0.1:{port()}"


def twilio_settings() -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": os.environ.get("TWILIO_ACCOUNT_SID", LOCAL_ACCOUNT_SID),
        "TWILIO_AUTH_TOKEN": os.environ.get("TWILIO_AUTH_TOKEN", LOCAL_AUTH_TOKEN),
        "WHATSAPP_FROM": os.environ.get("WHATSAPP_FROM", LOCAL_SENDER),
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", gateway_url()),
    }


def real_credentials() -> bool:
    """Credentials of a real Twilio account in the environment: no stand-in then."""
    return "TWILIO_ACCOUNT_SID" in os.environ and "TWILIO_AUTH_TOKEN" in os.environ
