"""`make configure-twilio ENV=dev|prod SENDER=XE...` (or `MESSAGING_SERVICE=MG...`): points a
WhatsApp sender, or a Messaging Service, at the deployed stack's webhooks through Twilio's API.

The stack's name comes from samconfig.toml, its ``InboundWebhookUrl`` and ``StatusCallbackUrl``
outputs from CloudFormation. Idempotent: the current configuration is fetched first and updated
only where it differs, and each setting is reported ``unchanged`` or ``old -> new``.

Credentials: TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or with TWILIO_API_KEY and
TWILIO_API_SECRET; those of the account (or subaccount) the sender or service belongs to.
TWILIO_API_URL sends every request to another base URL (the local stand-in), as for the gateway.
"""

import argparse
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from requests.exceptions import RequestException
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.rest import Client
from twilio.rest.messaging.v2.channels_sender import ChannelsSenderList

from whatsapp_gateway.adapters.twilio_rest import twilio_http_client
from whatsapp_gateway.config import TwilioSettings
from whatsapp_gateway.errors import describe
from whatsapp_gateway.models.accounts import ACCOUNT_SID_PATTERN

SAMCONFIG = Path(__file__).resolve().parent.parent / "samconfig.toml"
INBOUND_OUTPUT = "InboundWebhookUrl"
STATUS_OUTPUT = "StatusCallbackUrl"
SENDER_SID = re.compile(r"^XE[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

type Value = str | bool | None


class ConfigureError(Exception):
    """An expected failure (no stack, no output, Twilio refusing): one line, exit status 1."""


# ---------------------------------------------------------------------- the pure part


@dataclass(frozen=True)
class Stack:
    name: str
    region: str | None  # None: the AWS configuration's


@dataclass(frozen=True)
class Webhooks:
    inbound_url: str
    status_callback_url: str


@dataclass(frozen=True)
class Change:
    setting: str
    old: Value
    new: Value

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def describe(self) -> str:
        if not self.changed:
            return f"{self.setting}: unchanged ({_shown(self.new)})"
        return f"{self.setting}: {_shown(self.old)} -> {_shown(self.new)}"


def _shown(value: Value) -> str:
    if value is None:
        return "(not set)"
    return str(value).lower() if isinstance(value, bool) else value


def stack_of(samconfig: str, env: str) -> Stack:
    """The stack ``sam deploy --config-env <env>`` deploys, as samconfig.toml names it (the
    global parameters, else the deploy command's, as SAM reads them)."""
    try:
        config = tomllib.loads(samconfig)
    except tomllib.TOMLDecodeError as error:
        raise ConfigureError(f"samconfig.toml is not valid TOML: {error}") from None
    sections = config.get(env)
    if not isinstance(sections, dict):  # absent, or a top-level key such as `version`
        sections = {}
    merged: dict[str, Any] = {
        **sections.get("deploy", {}).get("parameters", {}),
        **sections.get("global", {}).get("parameters", {}),
    }
    if not merged.get("stack_name"):
        known = ", ".join(name for name, value in config.items() if isinstance(value, dict))
        raise ConfigureError(
            f"samconfig.toml has no stack_name for environment {env!r} "
            f"([{env}.global.parameters]); its environments: {known or 'none'}"
        )
    return Stack(name=str(merged["stack_name"]), region=merged.get("region"))


def webhooks_of(stack: str, status: str, outputs: Sequence[Mapping[str, Any]]) -> Webhooks:
    """The two webhook URLs among a stack's outputs."""
    values = {str(output["OutputKey"]): str(output.get("OutputValue") or "") for output in outputs}
    missing = [name for name in (INBOUND_OUTPUT, STATUS_OUTPUT) if not values.get(name)]
    if missing:
        raise ConfigureError(
            f"stack {stack} ({status}) has no output {' or '.join(missing)}: "
            "is it this gateway's stack, deployed from the current template.yaml?"
        )
    return Webhooks(inbound_url=values[INBOUND_OUTPUT], status_callback_url=values[STATUS_OUTPUT])


def plan(current: Mapping[str, Value], wanted: Mapping[str, Value]) -> list[Change]:
    """Each wanted setting against what Twilio holds now, in the wanted order."""
    return [Change(name, current.get(name), value) for name, value in wanted.items()]


def credentials(environ: Mapping[str, str]) -> tuple[str, str, str]:
    """The REST client's user name, password and account SID: an API key when one is given
    (a key can be revoked alone), else the account's auth token."""
    account_sid = environ.get("TWILIO_ACCOUNT_SID", "")
    if not re.match(ACCOUNT_SID_PATTERN, account_sid):
        raise ConfigureError("set TWILIO_ACCOUNT_SID to the account's SID (AC + 32 hex digits)")
    if environ.get("TWILIO_API_KEY") and environ.get("TWILIO_API_SECRET"):
        return environ["TWILIO_API_KEY"], environ["TWILIO_API_SECRET"], account_sid
    if environ.get("TWILIO_AUTH_TOKEN"):
        return account_sid, environ["TWILIO_AUTH_TOKEN"], account_sid
    raise ConfigureError("set TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET)")


# ---------------------------------------------------------------------- Twilio's resources


class Target(Protocol):
    """What Twilio calls the webhooks of: a sender or a Messaging Service."""

    label: str

    def wanted(self, webhooks: Webhooks) -> dict[str, Value]: ...

    def current(self) -> dict[str, Value]: ...

    def update(self, values: Mapping[str, Value]) -> None: ...


class WhatsAppSender:
    """A sender of the Senders API (Messaging v2): its ``webhook`` object."""

    def __init__(self, client: Client, sid: str) -> None:
        self.label = f"sender {sid}"
        self._context = client.messaging.v2.channels_senders(sid)
        self._webhook: dict[str, Any] = {}

    def wanted(self, webhooks: Webhooks) -> dict[str, Value]:
        # The gateway's routes take POST only.
        return {
            "webhook.callback_url": webhooks.inbound_url,
            "webhook.callback_method": "POST",
            "webhook.status_callback_url": webhooks.status_callback_url,
            "webhook.status_callback_method": "POST",
        }

    def current(self) -> dict[str, Value]:
        self._webhook = dict(self._context.fetch().webhook or {})
        return {f"webhook.{name}": value for name, value in self._webhook.items()}

    def update(self, values: Mapping[str, Value]) -> None:
        # The whole webhook object is sent: what is not changed here (a fallback URL) is
        # sent back as it was, never cleared.
        changed = {name.removeprefix("webhook."): value for name, value in values.items()}
        request = ChannelsSenderList.MessagingV2ChannelsSenderRequestsUpdate(
            {"webhook": self._webhook | changed}
        )
        self._context.update(messaging_v2_channels_sender_requests_update=request)


_SERVICE_SETTINGS = (
    "inbound_request_url",
    "inbound_method",
    "status_callback",
    "use_inbound_webhook_on_number",
)


class MessagingService:
    """A Messaging Service (Messaging v1): its inbound request URL and status callback, with
    the sender's own webhook switched off (``use_inbound_webhook_on_number`` would win)."""

    def __init__(self, client: Client, sid: str) -> None:
        self.label = f"messaging service {sid}"
        self._context = client.messaging.v1.services(sid)

    def wanted(self, webhooks: Webhooks) -> dict[str, Value]:
        return {
            "inbound_request_url": webhooks.inbound_url,
            "inbound_method": "POST",
            "status_callback": webhooks.status_callback_url,
            "use_inbound_webhook_on_number": False,
        }

    def current(self) -> dict[str, Value]:
        service = self._context.fetch()
        return {name: getattr(service, name) for name in _SERVICE_SETTINGS}

    def update(self, values: Mapping[str, Value]) -> None:
        self._context.update(**values)


def configure(target: Target, webhooks: Webhooks, report: Callable[[str], None]) -> list[Change]:
    """Sets the target's webhooks where they differ (one update call at most, none when
    nothing differs), then reports each setting."""
    with _twilio_errors(target.label):
        changes = plan(target.current(), target.wanted(webhooks))
        if any(change.changed for change in changes):
            target.update({change.setting: change.new for change in changes if change.changed})
    report(target.label)
    for change in changes:
        report(f"  {change.describe()}")
    return changes


@contextmanager
def _twilio_errors(label: str) -> Iterator[None]:
    """Twilio's refusals as one line that says what to check."""
    try:
        yield
    except (TwilioRestException, TwilioServiceException) as error:
        detail = error.msg if isinstance(error, TwilioRestException) else error.detail
        status = error.status
        if status == 401:
            raise ConfigureError(
                "Twilio refused the credentials (401): check TWILIO_ACCOUNT_SID and "
                f"TWILIO_AUTH_TOKEN (or the API key) of the {label}'s account"
            ) from None
        if status == 404:
            raise ConfigureError(
                f"Twilio has no {label} in this account (404): check the SID, and that the "
                "credentials are those of the account (or subaccount) it belongs to"
            ) from None
        raise ConfigureError(f"Twilio answered {status} for the {label}: {detail}") from None
    except RequestException as error:
        raise ConfigureError(f"Twilio did not answer ({type(error).__name__})") from None


# ---------------------------------------------------------------------- AWS


def stack_webhooks(stack: Stack) -> Webhooks:
    """The stack's webhook URLs, from CloudFormation's DescribeStacks."""
    try:
        cloudformation = boto3.client("cloudformation", region_name=stack.region)
        described = cloudformation.describe_stacks(StackName=stack.name)["Stacks"][0]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        if "does not exist" in message:
            raise ConfigureError(
                f"stack {stack.name} not found in {cloudformation.meta.region_name}: deploy it "
                "first (make deploy ENV=...), or check the AWS account and region"
            ) from None
        raise ConfigureError(f"CloudFormation refused DescribeStacks: {message}") from None
    except BotoCoreError as error:
        raise ConfigureError(f"AWS: {error}") from None
    return webhooks_of(stack.name, described["StackStatus"], described.get("Outputs", []))


# ---------------------------------------------------------------------- the command


def run(argv: Sequence[str] | None = None) -> int:
    """The command (arguments and environment as ``make configure-twilio`` passes them); its
    exit status."""
    args = _parser().parse_args(argv)
    try:
        stack = stack_of(_read(Path(args.config_file)), args.env)
        username, password, account_sid = credentials(os.environ)
        webhooks = stack_webhooks(stack)
        client = Client(
            username=username,
            password=password,
            account_sid=account_sid,
            http_client=_http_client(),
        )
        target: Target = (
            WhatsAppSender(client, args.sender)
            if args.sender
            else MessagingService(client, args.messaging_service)
        )
        print(f"stack {stack.name}")  # noqa: T201  (a command's output)
        configure(target, webhooks, print)
    except ConfigureError as error:
        print(f"configure-twilio: {error}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def _http_client() -> HttpClient:
    """The gateway's own HTTP layer for Twilio: its timeout, and TWILIO_API_URL's
    redirection."""
    try:
        return twilio_http_client(TwilioSettings.from_environ())
    except ValidationError as error:
        raise ConfigureError(f"Twilio settings: {describe(error)}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise ConfigureError(f"cannot read {path}: {error.strerror}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make configure-twilio", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--env", required=True, type=_environment, help="the samconfig.toml environment (dev, prod)"
    )
    parser.add_argument("--config-file", default=str(SAMCONFIG), help="samconfig.toml to read")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--sender", type=_sid(SENDER_SID), help="a WhatsApp sender's SID (XE...)")
    which.add_argument(
        "--messaging-service", type=_sid(SERVICE_SID), help="a Messaging Service's SID (MG...)"
    )
    return parser


def _environment(value: str) -> str:
    if not value:
        raise argparse.ArgumentTypeError("name one: make configure-twilio ENV=dev|prod ...")
    return value


def _sid(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def checked(value: str) -> str:
        if not pattern.match(value):
            raise argparse.ArgumentTypeError(f"not a SID like {pattern.pattern}: {value!r}")
        return value

    return checked


if __name__ == "__main__":
    sys.exit(run())
