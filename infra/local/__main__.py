"""`make local`: the whole gateway on this machine until Ctrl-C."""

import logging
import os
import secrets
import signal
import sys
import threading
import time

from infra.local import defaults
from infra.local.moto import free_port, moto_server
from infra.local.stack import LocalStack

EXAMPLES = """
Try it (another terminal):
  # a contact writes in (a signed webhook, as Twilio sends it)
  make inbound FROM=+15005550006 BODY="Hi, where is my order?"
  # a free-form reply; then its statuses
  curl -s {key}-X POST {url}/v1/messages -H 'content-type: application/json' \\
       -d '{{"to": "+15005550006", "body": "On its way!"}}'
  curl -s {key}{url}/v1/messages/<id>
  # the windows of the contact
  curl -s {key}{url}/v1/contacts/+15005550006/windows
  # 24 hours later, a free-form message is refused: outside_service_window
  curl -s {key}-X POST {url}/_local/clock/advance -d '{{"seconds": 86401}}'
  # an approved template goes out instead, and opens a utility conversation
  curl -s {key}-X POST {url}/v1/messages -H 'content-type: application/json' \\
       -d '{{"to": "+15005550006", "variables": {{"1": "Ada"}},
            "template": {{"name": "order_update", "language": "en"}}}}'
  # the templates, synced from {twilio}
  curl -s {key}{url}/v1/templates
"""
STAND_IN_EXAMPLES = """  # make Twilio fail the next message to a contact
  curl -s -X POST {url}/_local/twilio/fail -d '{{"to": "+15005550006", "error_code": 63016}}'
"""


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout
    )
    for noisy in ("botocore", "urllib3", "aws_lambda_powertools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Every function of the stack shares one process and its clients' pools (in Lambda, one
    # invocation at a time has them): a full pool under load is expected here, not news.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # The functions' own JSON logs stay quiet unless LOG_LEVEL says otherwise: the stack logs
    # one line a request.
    environment = defaults.twilio_settings() | {
        "POWERTOOLS_LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    # The stand-in, unless TWILIO_API_URL points elsewhere or real credentials are given (then
    # the SDK talks to Twilio's own hosts).
    if "TWILIO_API_URL" in os.environ:
        environment["TWILIO_API_URL"] = os.environ["TWILIO_API_URL"]
    stand_in = "TWILIO_API_URL" not in os.environ and not defaults.real_credentials()
    # Real credentials send real messages, and the README points a public tunnel at this port:
    # everything but Twilio's webhooks then asks for this key (docs/decisions.md).
    api_key = secrets.token_urlsafe(32) if defaults.real_credentials() else None
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    started = time.perf_counter()
    with moto_server(int(os.environ["MOTO_PORT"]) if "MOTO_PORT" in os.environ else None) as aws:
        stack = LocalStack(
            port=defaults.port(),
            twilio_port=int(os.environ.get("TWILIO_PORT") or free_port()),
            environment=environment,
            stand_in=stand_in,
            api_key=api_key,
        )
        stack.start()
        twilio = (
            f"stand-in at {os.environ['TWILIO_API_URL']}"
            if stack.stand_in
            else os.environ.get("TWILIO_API_URL", "Twilio's own API (real credentials)")
        )
        key = (
            f"  API key  {api_key}   (real credentials: every route but the webhooks asks for "
            f"'Authorization: Bearer <key>')\n"
            if api_key
            else ""
        )
        examples = EXAMPLES.format(
            url=stack.base_url,
            key=f"-H 'authorization: Bearer {api_key}' " if api_key else "",
            twilio="the Twilio stand-in" if stack.stand_in else "your Twilio account",
        )
        if stack.stand_in:
            examples += STAND_IN_EXAMPLES.format(url=stack.base_url)
        print(
            f"WhatsApp gateway ready in {time.perf_counter() - started:.1f}s\n"
            f"  gateway  {stack.base_url}   (routes from template.yaml: "
            f"{', '.join(f'{r.method} {r.template_path}' for r in stack.routes)})\n"
            f"  AWS      moto at {aws}\n"
            f"  Twilio   {twilio}\n"
            f"  sender   {environment['WHATSAPP_FROM']}"
            f"   account {environment['TWILIO_ACCOUNT_SID']}\n" + key + examples,
            flush=True,
        )
        try:
            stopped.wait()
        finally:
            print("Stopping...", flush=True)
            stack.stop()
    print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
