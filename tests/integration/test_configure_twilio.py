"""`make configure-twilio`: a stack's webhook URLs, read from CloudFormation (moto), set on a
WhatsApp sender or a Messaging Service of the local Twilio stand-in (over HTTP, through
TWILIO_API_URL), once; a second run changes nothing."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.configure_twilio import (
    INBOUND_OUTPUT,
    STATUS_OUTPUT,
    ConfigureError,
    credentials,
    run,
)
from infra.local.moto import free_port
from infra.local.twilio_standin import (
    Exchange,
    TwilioStandIn,
    messaging_service,
    whatsapp_sender,
)
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from whatsapp_gateway.clock import Clock

# boto3's client (no type stubs for CloudFormation are installed).
type CloudFormationClient = Any

NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
SENDER_SID = "XE" + "0123456789abcdef" * 2
SERVICE_SID = "MG" + "fedcba9876543210" * 2
SENDER_NUMBER = "whatsapp:+15005550006"  # a Twilio test number
STACK = "whatsapp-gateway-test"
API = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
INBOUND = f"{API}/webhooks/twilio/inbound"
STATUS = f"{API}/webhooks/twilio/status"
# What a previous deployment (another API id) left on the sender.
OLD_INBOUND = "https://z9y8x7w6v5.execute-api.us-east-1.amazonaws.com/webhooks/twilio/inbound"
FALLBACK = "https://fallback.example.test/inbound"

SAMCONFIG = f"""
version = 0.1

[dev.global.parameters]
stack_name = "{STACK}"

[dev.deploy.parameters]
region = "us-east-1"

[prod.global.parameters]
stack_name = "whatsapp-gateway-not-deployed"
"""


@pytest.fixture
def samconfig(tmp_path: Path) -> Path:
    path = tmp_path / "samconfig.toml"
    path.write_text(SAMCONFIG)
    return path


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationClient]:
    with mock_aws():
        yield boto3.client("cloudformation")


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioStandIn]:
    """The stand-in with one sender (an old inbound URL, a fallback URL of its own) and one
    Messaging Service (its numbers' own webhooks in use), all Twilio traffic sent to it."""
    stand_in = TwilioStandIn(
        account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN, clock=Clock(NOW)
    )
    stand_in.senders[SENDER_SID] = whatsapp_sender(
        SENDER_SID, SENDER_NUMBER, callback_url=OLD_INBOUND, fallback_url=FALLBACK
    )
    stand_in.messaging_services[SERVICE_SID] = messaging_service(
        SERVICE_SID, TEST_ACCOUNT_SID, NOW, inbound_request_url="https://old.example.test/sms"
    )
    monkeypatch.setenv("TWILIO_API_URL", stand_in.start(free_port()))
    yield stand_in
    stand_in.stop()


def deploy(cloudformation: CloudFormationClient, outputs: dict[str, str]) -> None:
    """A stack named as samconfig's dev environment names it, with these outputs."""
    template = {
        "Resources": {"Handle": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(template))


def configure(samconfig: Path, *target: str, env: str = "dev") -> int:
    return run(["--env", env, "--config-file", str(samconfig), *target])


def updates(twilio: TwilioStandIn) -> list[Exchange]:
    return [exchange for exchange in twilio.exchanges if exchange.method == "POST"]


@pytest.fixture
def deployed(cloudformation: CloudFormationClient) -> None:
    deploy(
        cloudformation,
        {INBOUND_OUTPUT: INBOUND, STATUS_OUTPUT: STATUS, "ApiBaseUrl": API},
    )


@pytest.mark.usefixtures("deployed")
def test_a_sender_gets_both_urls_once_and_a_second_run_changes_nothing(
    samconfig: Path, twilio: TwilioStandIn, capsys: pytest.CaptureFixture[str]
):
    # When the sender is configured
    assert configure(samconfig, "--sender", SENDER_SID) == 0

    # Then the stand-in holds the stack's URLs, POST, and the sender's own fallback URL still
    assert twilio.senders[SENDER_SID]["webhook"] == {
        "callback_url": INBOUND,
        "callback_method": "POST",
        "fallback_url": FALLBACK,
        "fallback_method": "POST",
        "status_callback_url": STATUS,
        "status_callback_method": "POST",
    }
    # after one fetch and one update, whose JSON body sent the fallback back as it was
    assert [(e.method, e.path) for e in twilio.exchanges] == [
        ("GET", f"/v2/Channels/Senders/{SENDER_SID}"),
        ("POST", f"/v2/Channels/Senders/{SENDER_SID}"),
    ]
    (update,) = updates(twilio)
    assert update.body is not None
    assert update.body["webhook"]["callback_url"] == INBOUND
    assert update.body["webhook"]["status_callback_url"] == STATUS
    assert update.body["webhook"]["fallback_url"] == FALLBACK
    first = capsys.readouterr().out.splitlines()
    assert first == [
        f"stack {STACK}",
        f"sender {SENDER_SID}",
        f"  webhook.callback_url: {OLD_INBOUND} -> {INBOUND}",
        "  webhook.callback_method: unchanged (POST)",
        f"  webhook.status_callback_url: (not set) -> {STATUS}",
        "  webhook.status_callback_method: unchanged (POST)",
    ]

    # When it runs again
    assert configure(samconfig, "--sender", SENDER_SID) == 0

    # Then Twilio is only read, and every setting is reported unchanged
    assert len(updates(twilio)) == 1
    assert [e.method for e in twilio.exchanges] == ["GET", "POST", "GET"]
    second = capsys.readouterr().out.splitlines()
    assert second[2:] == [
        f"  webhook.callback_url: unchanged ({INBOUND})",
        "  webhook.callback_method: unchanged (POST)",
        f"  webhook.status_callback_url: unchanged ({STATUS})",
        "  webhook.status_callback_method: unchanged (POST)",
    ]


@pytest.mark.usefixtures("deployed")
def test_a_messaging_service_gets_both_urls_and_stops_using_its_numbers_webhooks(
    samconfig: Path, twilio: TwilioStandIn, capsys: pytest.CaptureFixture[str]
):
    # When the Messaging Service is configured
    assert configure(samconfig, "--messaging-service", SERVICE_SID) == 0

    # Then it calls the stack's URLs, not its numbers' own webhooks
    service = twilio.messaging_services[SERVICE_SID]
    assert service["inbound_request_url"] == INBOUND
    assert service["inbound_method"] == "POST"
    assert service["status_callback"] == STATUS
    assert service["use_inbound_webhook_on_number"] is False
    # through one update of exactly the fields that differed (a form, as Messaging v1 takes)
    (update,) = updates(twilio)
    assert update.path == f"/v1/Services/{SERVICE_SID}"
    assert update.form == {
        "InboundRequestUrl": [INBOUND],
        "StatusCallback": [STATUS],
        "UseInboundWebhookOnNumber": ["false"],
    }
    first = capsys.readouterr().out.splitlines()
    assert first[1:] == [
        f"messaging service {SERVICE_SID}",
        f"  inbound_request_url: https://old.example.test/sms -> {INBOUND}",
        "  inbound_method: unchanged (POST)",
        f"  status_callback: (not set) -> {STATUS}",
        "  use_inbound_webhook_on_number: true -> false",
    ]

    # When it runs again: no update, all unchanged
    assert configure(samconfig, "--messaging-service", SERVICE_SID) == 0
    assert len(updates(twilio)) == 1
    second = capsys.readouterr().out
    assert second.count("unchanged") == 4
    assert "->" not in second


def test_a_stack_that_is_not_deployed_is_a_clean_error(
    cloudformation: CloudFormationClient,
    samconfig: Path,
    twilio: TwilioStandIn,
    capsys: pytest.CaptureFixture[str],
):
    assert configure(samconfig, "--sender", SENDER_SID, env="prod") == 1

    captured = capsys.readouterr()
    assert captured.err == (
        "configure-twilio: stack whatsapp-gateway-not-deployed not found in us-east-1: deploy "
        "it first (make deploy ENV=...), or check the AWS account and region\n"
    )
    assert captured.out == ""
    assert twilio.exchanges == []


def test_a_stack_without_the_webhook_outputs_is_a_clean_error(
    cloudformation: CloudFormationClient,
    samconfig: Path,
    twilio: TwilioStandIn,
    capsys: pytest.CaptureFixture[str],
):
    deploy(cloudformation, {INBOUND_OUTPUT: INBOUND})

    assert configure(samconfig, "--sender", SENDER_SID) == 1

    error = capsys.readouterr().err
    assert error.startswith(f"configure-twilio: stack {STACK} (CREATE_COMPLETE) has no output ")
    assert STATUS_OUTPUT in error
    assert INBOUND_OUTPUT not in error
    assert "Traceback" not in error
    assert twilio.exchanges == []


def test_an_environment_samconfig_does_not_name_is_a_clean_error(
    samconfig: Path, capsys: pytest.CaptureFixture[str]
):
    assert configure(samconfig, "--sender", SENDER_SID, env="staging") == 1

    assert capsys.readouterr().err == (
        "configure-twilio: samconfig.toml has no stack_name for environment 'staging' "
        "([staging.global.parameters]); its environments: dev, prod\n"
    )


@pytest.mark.usefixtures("deployed")
def test_credentials_twilio_refuses_are_a_clean_error_and_change_nothing(
    samconfig: Path,
    twilio: TwilioStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-the-account-token")

    assert configure(samconfig, "--sender", SENDER_SID) == 1

    error = capsys.readouterr().err
    assert error.startswith("configure-twilio: Twilio refused the credentials (401)")
    assert "Traceback" not in error
    assert [(e.method, e.status) for e in twilio.exchanges] == [("GET", 401)]
    assert twilio.senders[SENDER_SID]["webhook"]["callback_url"] == OLD_INBOUND


@pytest.mark.usefixtures("deployed")
@pytest.mark.parametrize(
    ("flag", "sid", "label"),
    [
        ("--sender", "XE" + "9" * 32, "sender"),
        ("--messaging-service", "MG" + "9" * 32, "messaging service"),
    ],
)
def test_a_sid_the_account_does_not_have_is_a_clean_error(
    samconfig: Path,
    twilio: TwilioStandIn,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    sid: str,
    label: str,
):
    assert configure(samconfig, flag, sid) == 1

    error = capsys.readouterr().err
    assert error.startswith(f"configure-twilio: Twilio has no {label} {sid} in this account (404)")
    assert [(e.method, e.status) for e in twilio.exchanges] == [("GET", 404)]


def test_the_sender_or_the_service_is_named_by_a_sid_of_its_kind(samconfig: Path):
    with pytest.raises(SystemExit) as exited:
        configure(samconfig, "--sender", SERVICE_SID)
    assert exited.value.code == 2
    with pytest.raises(SystemExit):
        configure(samconfig, "--sender", SENDER_SID, "--messaging-service", SERVICE_SID)


def test_credentials_are_an_api_key_when_one_is_given_else_the_auth_token():
    account = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID}
    key = {"TWILIO_API_KEY": "SK" + "0" * 32, "TWILIO_API_SECRET": "key-secret"}

    assert credentials(account | {"TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}) == (
        TEST_ACCOUNT_SID,
        TEST_AUTH_TOKEN,
        TEST_ACCOUNT_SID,
    )
    assert credentials(account | key | {"TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}) == (
        key["TWILIO_API_KEY"],
        "key-secret",
        TEST_ACCOUNT_SID,
    )
    with pytest.raises(ConfigureError, match="TWILIO_AUTH_TOKEN"):
        credentials(account)
    with pytest.raises(ConfigureError, match="TWILIO_ACCOUNT_SID"):
        credentials({"TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN})
