"""The local stack itself: it answers as API Gateway would when a function fails, and
`make local` stops cleanly on Ctrl-C (issue 6: no orphan processes, ports freed)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.local.inbound import inbound_form
from infra.local.moto import free_port
from tests.e2e.conftest import ROOT, STACK_SETTINGS, Gateway
from tests.e2e.steps import INBOUND, post_form, signature, windows

STOP_SECONDS = 15
# infra/local/__main__.py waits for Ctrl-C with an untimed Event.wait(): a SIGINT whose C
# handler runs just before the main thread blocks in the lock is only acted on at the next
# signal, so `make local` stopped right as it became ready may not stop (seen under load).
# Signalled once it waits, it must stop.
SETTLE_SECONDS = 0.5
# Larger than DynamoDB's 400 KB item: the inbound function cannot record the message.
UNSTORABLE_BODY = "x" * 500_000


def test_a_function_that_fails_is_answered_500_as_api_gateway_does(gateway: Gateway):
    contact = "+15005550117"
    url = f"{gateway.url}{INBOUND}"
    # Given a signed inbound message the inbound function fails to record
    form = inbound_form(contact, UNSTORABLE_BODY, gateway.settings)

    # When Twilio posts it
    try:
        answer: tuple[int, str, str] | None = post_form(url, form, signature(url, form))
    except OSError:  # the connection closed without an answer
        answer = None

    # Then the stack is still up, nothing was recorded
    assert gateway.request("GET", "/_local/health")[0] == 200
    assert windows(gateway, contact)["service_window"]["open"] is False
    # and Twilio got a 500, as from API Gateway (so that it retries)
    assert answer is not None, "the connection was closed without an answer"
    status, _, body = answer
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


def test_ctrl_c_stops_the_stack_its_aws_and_its_twilio_and_frees_every_port(tmp_path: Path):
    ports = {name: free_port() for name in ("PORT", "TWILIO_PORT", "MOTO_PORT")}
    environment = {
        **{name: value for name, value in os.environ.items() if name not in STACK_SETTINGS},
        **{name: str(port) for name, port in ports.items()},
        "PYTHONPATH": os.pathsep.join(
            str(ROOT / part) for part in ("layers/whatsapp_gateway", "functions", ".")
        ),
        # A stack that does not stop dumps every thread's stack on SIGABRT, into its log.
        "PYTHONFAULTHANDLER": "1",
    }
    children: list[int] = []
    output = tmp_path / "make-local.log"
    # Given `make local` running, its gateway, Twilio stand-in and moto answering
    with output.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        stack = Gateway(url=f"http://127.0.0.1:{ports['PORT']}", process=process)
        deadline = time.monotonic() + 60
        while not _answers(ports["PORT"]) or stack.request("GET", "/_local/health")[0] != 200:
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the stack did not start within 60 s"
            time.sleep(0.2)
        assert all(_answers(port) for port in ports.values())
        children = _children(process.pid)
        if Path("/proc").is_dir():
            assert children, "moto runs in a process of its own"

        # When it gets Ctrl-C (once it waits for it: a SIGINT that lands as the main thread
        # enters its wait for Ctrl-C can be lost, see SETTLE_SECONDS)
        time.sleep(SETTLE_SECONDS)
        process.send_signal(signal.SIGINT)

        # Then it exits cleanly, soon
        try:
            code = process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            process.wait()
            pytest.fail(f"not stopped {STOP_SECONDS} s after Ctrl-C:\n{output.read_text()}")
        assert code == 0, output.read_text()
        assert output.read_text().rstrip().endswith("Stopped.")
        assert "Traceback" not in output.read_text()
        # and frees every port
        assert not any(_answers(port) for port in ports.values())
        # and leaves none of its processes (the moto server) behind
        assert all(not _alive(child) for child in children), children
    finally:
        # Whatever happened, nothing of this test outlives it.
        if process.poll() is None:
            process.kill()
            process.wait()
        for child in children:
            if _alive(child):
                os.kill(child, signal.SIGKILL)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """The process's children, from /proc (Linux); none where /proc is not."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        found.extend(int(child) for child in listing.read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    # A zombie has exited; only its parent's wait is missing.
    return not (status.exists() and "\nState:\tZ" in status.read_text())
