"""Settings every test shares: fake AWS credentials (nothing may reach AWS), Powertools in
test mode, and one fake Twilio account."""

import os

import pytest

from infra.sam_template import load_template

TEST_ACCOUNT_SID = "AC" + "1" * 32
TEST_AUTH_TOKEN = "test-auth-token-0000"
TEST_SENDER = "whatsapp:+14155238886"
TEST_CONTACT = "whatsapp:+15005550006"
PUBLIC_BASE_URL = "https://gateway.example.test"

# The Powertools settings the template gives every function (its literal ones); read by Logger,
# Metrics and the Tracer's decorators when the handlers are first imported, so set when this
# file is loaded: before the conftest files below it. No X-Ray daemon in tests.
_GLOBALS = load_template()["Globals"]["Function"]["Environment"]["Variables"]
_LAMBDA_ENVIRONMENT = {
    **{
        name: value
        for name, value in _GLOBALS.items()
        if name.startswith("POWERTOOLS_") and isinstance(value, str)
    },
    "POWERTOOLS_TRACE_DISABLED": "true",
}

_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
    "WHATSAPP_FROM": TEST_SENDER,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
}

os.environ.update(_LAMBDA_ENVIRONMENT)


@pytest.fixture(autouse=True)
def _test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "TWILIO_ACCOUNTS_SECRET", "TWILIO_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in _ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    assert "AWS_ENDPOINT_URL" not in os.environ
