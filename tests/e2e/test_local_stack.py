"""The local stack itself, over HTTP: many requests at once are answered as Lambda answers
them, a bad request to a local route is a 400, with real Twilio credentials only the webhooks
answer without the stack's API key, and `make local` stops cleanly on Ctrl-C (issue 6: no
orphan processes, ports freed). A failing function's 500: tests/unit/test_local_stack.py."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from infra.local.defaults import STACK_SETTINGS
from infra.local.inbound import inbound_form
from infra.local.moto import free_port
from tests.e2e.conftest import ROOT, SENDER, Gateway, running_stack
from tests.e2e.steps import DAY, INBOUND, at, message, post_form, signature

STOP_SECONDS = 15
# infra/local/__main__.py waits for Ctrl-C with an untimed Event.wait(): a SIGINT whose C
# handler runs just before the main thread blocks in the lock is only acted on at the next
# signal, so `make local` stopped right as it became ready may not stop (seen under load).
# Signalled once it waits, it must stop.
SETTLE_SECONDS = 0.5
# Requests at once: a few sends (each then sent and called back: work for the tests after),
# and reads of other routes (48 in all overflowed the server's default listen backlog of 5:
# connections were reset).
CONCURRENT_SENDS = 8
CONCURRENT_READS = 20


def test_concurrent_requests_to_one_function_are_answered_as_lambda_answers_them(
    gateway: Gateway,
):
    # Given a contact who wrote in (free-form replies are allowed)
    contact = "+15005550119"
    assert gateway.write_in(contact, "Hi")[0] == 200
    replies = [f"Reply {n}" for n in range(CONCURRENT_SENDS)]
    requests: list[tuple[str, str, dict[str, str] | None]] = [
        ("POST", "/v1/messages", {"to": contact, "body": reply}) for reply in replies
    ]
    requests += [("GET", f"/v1/contacts/{contact}/windows", None)] * CONCURRENT_READS
    requests += [("GET", "/v1/templates", None)] * CONCURRENT_READS

    # When they all reach the API function at once (make bench saw 500 KeyError: '_route')
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        answers = list(pool.map(lambda r: gateway.request(*r), requests))

    # Then each is answered as one Lambda environment at a time answers it: no 5xx, and each
    # send accepted its own request (Powertools keeps the request on the module's resolver)
    statuses = [status for status, _ in answers]
    expected = [202] * CONCURRENT_SENDS + [200] * 2 * CONCURRENT_READS
    assert statuses == expected, [answer for answer in answers if answer[0] >= 500]
    accepted = [message(gateway, answer["id"])["body"] for _, answer in answers[: len(replies)]]
    assert accepted == replies


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_local/clock/advance", b"{not json"),
        ("/_local/clock/advance", b'{"seconds": "soon"}'),
        ("/_local/clock/advance", b"[]"),
        ("/_local/clock/advance", b"{}"),
        ("/_local/clock/advance", b'{"seconds": 1e300}'),
        ("/_local/clock/advance", b'{"seconds": -86400}'),
        ("/_local/twilio/fail", b'{"to": "+15005550006"}'),
        ("/_local/twilio/fail", b'{"to": "+15005550006", "error_code": "x"}'),
        ("/_local/schedules/run", b'{"function": "NoSuchFunction"}'),
    ],
)
def test_a_bad_request_to_a_local_route_is_a_400_not_a_traceback(
    gateway: Gateway, path: str, body: bytes
):
    # When a local route gets a body it cannot use
    request = urllib.request.Request(  # noqa: S310  (the local stack)
        gateway.url + path, data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()

    # Then it answers 400 in the contract's shape, not a traceback
    assert status == 400, raw
    assert json.loads(raw)["error"]["code"] == "invalid_request"


# A real account's credentials, as far as `make local` can tell (obviously fake ones), with
# Twilio's API at a closed local port: nothing leaves this machine.
REAL_LOOKING_ACCOUNT_SID = "AC" + "0" * 31 + "2"
REAL_LOOKING_AUTH_TOKEN = "not-a-real-auth-token"


@pytest.fixture(scope="module")
def tunnelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    """`make local` with real credentials, as a public tunnel reaches it; and its API key."""
    output = tmp_path_factory.mktemp("real") / "make-local.log"
    with running_stack(
        output,
        TWILIO_ACCOUNT_SID=REAL_LOOKING_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=REAL_LOOKING_AUTH_TOKEN,
        TWILIO_API_URL=f"http://127.0.0.1:{free_port()}",
    ) as stack:
        keys = re.findall(r"API key\s+(\S+)", output.read_text())
        assert keys, output.read_text()
        yield stack, keys[0]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/messages", {"to": "+15005550121", "body": "Hi from a stranger"}),
        ("GET", "/v1/contacts/+15005550121/windows", None),
        ("GET", "/v1/templates", None),
        ("POST", "/v1/templates/sync", None),
        ("POST", "/_local/clock/advance", {"seconds": 86401}),
        ("GET", "/_local/health", None),
        ("GET", "/somewhere/else", None),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer not-the-key", "the key, bare"])
def test_with_real_credentials_nothing_but_the_webhooks_answers_without_the_api_key(
    tunnelled: tuple[Gateway, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    authorization: str | None,
):
    stack, key = tunnelled
    headers = {} if authorization is None else {"authorization": authorization}
    if authorization == "the key, bare":
        headers["authorization"] = key
    _, before = stack.request("GET", "/_local/health", authorization=f"Bearer {key}")

    # When someone who found the tunnel calls the stack without its key
    status, answer = stack.request(method, path, body, **headers)

    # Then it is refused in the contract's error shape, and nothing happened: the clock stayed
    assert (status, answer["error"]["code"]) == (401, "unauthorized"), answer
    _, after = stack.request("GET", "/_local/health", authorization=f"Bearer {key}")
    assert at(after["now"]) - at(before["now"]) < DAY


def test_with_real_credentials_the_webhooks_need_no_key_and_the_api_key_opens_the_api(
    tunnelled: tuple[Gateway, str],
):
    stack, key = tunnelled
    contact = "+15005550122"
    settings = {
        "TWILIO_ACCOUNT_SID": REAL_LOOKING_ACCOUNT_SID,
        "WHATSAPP_FROM": SENDER,
    }
    url = f"{stack.url}{INBOUND}"

    # When Twilio posts a contact's message, signed, without any key
    form = inbound_form(contact, "Hi", settings)
    status, _, _ = post_form(url, form, signature(url, form, REAL_LOOKING_AUTH_TOKEN))

    # Then it is taken, and the business (with the key) sees the contact's window open
    assert status == 200
    status, view = stack.request(
        "GET", f"/v1/contacts/{contact}/windows", authorization=f"Bearer {key}"
    )
    assert (status, view["service_window"]["open"]) == (200, True)


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
