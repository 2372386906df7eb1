"""The local stack in a subprocess on free ports, driven only over HTTP, as Twilio and a
business would; stopped (and checked stopped) at the end of the session."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.local.defaults import LOCAL_ACCOUNT_SID, LOCAL_AUTH_TOKEN, LOCAL_SENDER, STACK_SETTINGS
from infra.local.inbound import inbound_form, post_signed
from infra.local.moto import free_port

ROOT = Path(__file__).resolve().parents[2]
# The local stack's own defaults: with no credentials in the environment it runs the stand-in.
ACCOUNT_SID = LOCAL_ACCOUNT_SID
AUTH_TOKEN = LOCAL_AUTH_TOKEN
SENDER = LOCAL_SENDER
# What `make local` prints once it serves.
READY = "WhatsApp gateway ready"


@dataclass
class Gateway:
    """The running local stack, over HTTP."""

    url: str
    process: subprocess.Popen[str]

    @property
    def settings(self) -> dict[str, str]:
        return {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "WHATSAPP_FROM": SENDER,
            "PUBLIC_BASE_URL": self.url,
        }

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **headers: str
    ) -> tuple[int, Any]:
        """A JSON request; the status and the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  (the local stack)
            self.url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                return answer.status, _decoded(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, _decoded(error.read())

    def write_in(self, contact: str, body: str, **fields: str) -> tuple[int, dict[str, str]]:
        """A contact's message, as Twilio posts it (signed); the status and the form."""
        form = inbound_form(contact, body, self.settings) | fields
        status, _ = post_signed(f"{self.url}/webhooks/twilio/inbound", form, AUTH_TOKEN)
        return status, form

    def wait_for(self, path: str, done: Any, timeout: float = 15) -> Any:
        """Polls GET ``path`` until ``done(answer)``; the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            _, answer = self.request("GET", path)
            if done(answer) or time.monotonic() > deadline:
                return answer
            time.sleep(0.1)


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode()


@contextmanager
def running_stack(output: Path, **settings: str) -> Iterator[Gateway]:
    """`make local` in a subprocess on free ports, its output in ``output``, on its own defaults
    but for ``settings``; stopped with Ctrl-C at the end."""
    port = free_port()
    environment = {
        **{name: value for name, value in os.environ.items() if name not in STACK_SETTINGS},
        "PORT": str(port),
        "TWILIO_PORT": str(free_port()),
        "MOTO_PORT": str(free_port()),
        "PYTHONPATH": os.pathsep.join(
            str(ROOT / part) for part in ("layers/whatsapp_gateway", "functions", ".")
        ),
        **settings,
    }
    # A file, not a pipe: a pipe nobody reads blocks the stack once it is full.
    with output.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    stack = Gateway(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + 60
        # Printed once it serves (and has printed what it prints at start-up).
        while READY not in output.read_text():
            if process.poll() is not None:
                pytest.fail(f"make local exited early:\n{output.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail("the local stack was not ready within 60 s")
            time.sleep(0.2)
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_stack(tmp_path_factory.mktemp("local") / "make-local.log") as stack:
        yield stack
