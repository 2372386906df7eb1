"""`make local` in a subprocess, driven over HTTP as Twilio and a business drive it: how fast it
takes messages in and sends them, and what it does with many requests at once, counted so that
no request answered 5xx, no message lost and none doubled goes unseen."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.local.defaults import LOCAL_ACCOUNT_SID, LOCAL_AUTH_TOKEN, LOCAL_SENDER, STACK_SETTINGS
from infra.local.inbound import inbound_form, post_signed
from infra.local.moto import LOCAL_AWS, free_port
from infra.local.twilio_standin import CALLBACK_STATUSES

ROOT = Path(__file__).resolve().parent.parent
# The environment `make bench` started with: the in-process benchmarks change os.environ.
_STARTED_WITH = dict(os.environ)
STARTUP_SECONDS = 60
STOP_SECONDS = 60
REQUEST_SECONDS = 60
SETTLE_SECONDS = 180
# One line a request in the stack's log: "<time> POST /v1/messages 202 35ms".
_REQUEST_LINE = re.compile(r" (GET|POST|PUT|DELETE) (/\S*) (\d{3}) \d+ms$")
_ERROR_LINE = re.compile(r"^([\w.]+(?:Error|Exception)): ?(.{0,60})")


@dataclass
class Stack:
    """The running local stack: the gateway, and moto behind it."""

    url: str
    aws: str
    log: Path
    startup_seconds: float

    @property
    def settings(self) -> dict[str, str]:
        return {
            "TWILIO_ACCOUNT_SID": LOCAL_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": LOCAL_AUTH_TOKEN,
            "WHATSAPP_FROM": LOCAL_SENDER,
            "PUBLIC_BASE_URL": self.url,
        }

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """A JSON request: the status and the decoded answer (an error's too)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  (the local stack)
            self.url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as answer:  # noqa: S310
                return answer.status, _decoded(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, _decoded(error.read())

    def post_signed(self, url: str, form: dict[str, str]) -> int:
        """A webhook signed as Twilio signs it; its status."""
        return post_signed(url, form, LOCAL_AUTH_TOKEN)[0]

    def created_messages(self) -> list[dict[str, Any]]:
        """The messages the Twilio stand-in accepted: the form it was posted and its answer."""
        _, answer = self.call("GET", "/_local/twilio/exchanges")
        return [
            exchange
            for exchange in answer["exchanges"]
            if exchange["method"] == "POST"
            and exchange["path"].endswith("/Messages.json")
            and exchange["status"] == 201
        ]


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@contextmanager
def running_stack(log: Path, attempts: int = 3) -> Iterator[Stack]:
    """`make local` on free ports, until it answers its health check; stopped (Ctrl-C, then
    killed with whatever it started if it does not stop in time) on the way out. Started again
    on other ports when another process took one first."""
    for attempt in range(1, attempts + 1):
        ports = {name: str(free_port()) for name in ("PORT", "MOTO_PORT", "TWILIO_PORT")}
        environment = {k: v for k, v in _STARTED_WITH.items() if k not in STACK_SETTINGS}
        environment |= ports | {
            "PYTHONPATH": os.pathsep.join(
                str(ROOT / part) for part in ("layers/whatsapp_gateway", "functions", ".")
            )
        }
        started = time.perf_counter()
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "infra.local"],
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its moto server with it, to be killed as one
            )
        try:
            stack = Stack(
                url=f"http://127.0.0.1:{ports['PORT']}",
                aws=f"http://127.0.0.1:{ports['MOTO_PORT']}",
                log=log,
                startup_seconds=0.0,
            )
            if _healthy(stack, process):
                stack.startup_seconds = time.perf_counter() - started
                yield stack
                return
        finally:
            _stop(process)
        if attempt == attempts:
            tail = "\n".join(log.read_text().splitlines()[-20:])
            raise RuntimeError(f"the local stack did not start ({attempts} tries):\n{tail}")


def _healthy(stack: Stack, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        with suppress(OSError):
            if stack.call("GET", "/_local/health")[0] == 200:
                return True
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # Whatever it left behind (its moto server, had it died without stopping it).
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def requests_logged(log: Path) -> tuple[Counter[tuple[str, int]], Counter[str]]:
    """The requests the stack answered, by route and status, and the errors it logged, by
    type and the start of their message, from its log."""
    answered: Counter[tuple[str, int]] = Counter()
    errors: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if matched := _REQUEST_LINE.search(line):
            path = re.sub(r"^/v1/messages/[^/]+$", "/v1/messages/{id}", matched[2])
            path = re.sub(r"^/v1/contacts/[^/]+/", "/v1/contacts/{contact}/", path)
            answered[(f"{matched[1]} {path}", int(matched[3]))] += 1
        elif matched := _ERROR_LINE.match(line):
            errors[f"{matched[1]}: {matched[2]}".strip()] += 1
    return answered, errors


# ---------------------------------------------------------------------- throughput


def throughput(messages: int, concurrency: int = 8) -> dict[str, Any]:
    """Start-up to the first healthy answer; then ``messages`` inbound webhooks (one per
    contact, ``concurrency`` at a time, retried as Twilio retries a failed webhook) and as many
    sends (accepted -> the Twilio stand-in received them), counted so that none is lost or
    doubled."""
    with running_stack(ROOT / "bench" / "local-stack.log") as stack:
        inbound_url = f"{stack.url}/webhooks/twilio/inbound"
        contacts = [f"+1500556{index:04d}" for index in range(messages)]
        retried: Counter[str] = Counter()

        def write_in(contact: str) -> float:
            form = inbound_form(contact, "hello", stack.settings)
            began = time.perf_counter()
            for _ in range(5):
                status = _status_or_none(lambda: stack.post_signed(inbound_url, form))
                if status == 200:
                    break
                retried[str(status)] += 1
            return time.perf_counter() - began

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = sorted(pool.map(write_in, contacts))
        inbound_seconds = time.perf_counter() - began

        def send(contact: str) -> tuple[int, str | None]:
            status, answer = stack.call("POST", "/v1/messages", {"to": contact, "body": "hi"})
            return status, answer["id"] if status == 202 else None

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            sent = list(pool.map(send, contacts))
        accepted = {message_id for _, message_id in sent if message_id}
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            created = [
                _message_id(exchange)
                for exchange in stack.created_messages()
                if _message_id(exchange) in accepted
            ]
            if len(set(created)) >= len(accepted) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        send_seconds = time.perf_counter() - began
    return {
        "startup_to_first_healthy_ms": round(stack.startup_seconds * 1000, 1),
        "messages": messages,
        "client_concurrency": concurrency,
        "inbound_per_second": round(messages / inbound_seconds, 1),
        "inbound_retried_as_twilio_would": dict(retried),
        "inbound_latency_ms": {
            "p50": round(latencies[len(latencies) // 2] * 1000, 1),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        },
        "sends_per_second": round(len(created) / send_seconds, 1),
        "send_answers": _by_status(status for status, _ in sent),
        "sends_accepted": len(accepted),
        "sends_received_by_twilio": len(created),
        "sends_lost": len(accepted - set(created)),
        "sends_doubled": len(created) - len(set(created)),
        "note": "local figures: moto and the stand-in bound them",
    }


def _status_or_none(request: Callable[[], int]) -> int | None:
    """The request's status; None when no answer came (refused, reset, timed out)."""
    try:
        return request()
    except OSError:
        return None


def _by_status(statuses: Iterable[int | None]) -> dict[str, int]:
    return dict(sorted(Counter("no answer" if s is None else str(s) for s in statuses).items()))


def _failed(status: int | None) -> bool:
    """What Twilio retries: a 5xx, or no answer."""
    return status is None or status >= 500


def _message_id(exchange: dict[str, Any]) -> str | None:
    """The gateway's id of a message the stand-in received, from its StatusCallback."""
    callback = str(exchange["form"].get("StatusCallback", [""])[0])
    return next(iter(parse_qs(urlsplit(callback).query).get("message_id", [])), None)


# ---------------------------------------------------------------------- concurrency

CONCURRENT_CONTACTS = 60
# Each sent message's callbacks the benchmark posts: every status once, and duplicates.
DUPLICATE_CALLBACKS = 2
TWILIO_RETRIES = 3
RETRY_CONCURRENCY = 8
SEED = 10

DEFINITIONS = {
    "5xx": "every 5xx the gateway answered during the run, from its log (the stand-in's own "
    "status callbacks and the retries included), and every request of the benchmark that got "
    "no answer (connection reset or refused, or none in 60 s): Twilio retries both",
    "lost": "a webhook or send the gateway accepted (200, 202) whose effect is missing at the "
    "end: an inbound message GET /v1/messages/{MessageSid} does not find, or without its "
    "message.received event; a send the stand-in never received, or not `read` at the end; a "
    "status callback whose status is not in the message's history; a read message without "
    "its message.status_changed event for read",
    "answered_after_15_s": "first answers that came after Twilio's webhook timeout (15 s): "
    "Twilio would have retried them; not in the target (the local stack runs each function "
    "one invocation at a time, on one machine)",
    "errors_logged": "the stack's log; BrokenPipeError: a client hung up before its answer "
    "(the stand-in waits 10 s for a status callback's answer, then stops reporting that "
    "message's later statuses)",
    "doubled": "a contact to whom the stand-in created more than one message; a "
    "message.received event repeated for one MessageSid; a message.status_changed event "
    "repeated for one (message, status); a conversation.opened repeated for one (sender, "
    "contact, category): each extra one counts",
}


def concurrency(contacts: int = CONCURRENT_CONTACTS) -> dict[str, Any]:
    """``contacts`` signed inbound webhooks at once (distinct contacts), then as many sends at
    once (each contact's service window open, each with its Idempotency-Key), then
    ``4 + DUPLICATE_CALLBACKS`` signed status callbacks a sent message, shuffled, at once,
    racing the stand-in's own. What was first answered 5xx or not at all is retried as Twilio
    retries a webhook (and a business a send, with the same key), after being counted. Then
    what the gateway answered 5xx (its log), lost and doubled (its API, the stand-in's
    exchanges and every event of its bus), against a target of 0, 0, 0."""
    rng = random.Random(SEED)  # noqa: S311  (a reproducible shuffle, not a secret)
    log = ROOT / "bench" / "local-stack-concurrency.log"
    with running_stack(log) as stack:
        bus = _BusCapture(stack.aws)
        inbound_url = f"{stack.url}/webhooks/twilio/inbound"
        numbers = [f"+1500558{index:04d}" for index in range(contacts)]
        forms = [inbound_form(number, "hello", stack.settings) for number in numbers]
        inbound = _Burst(lambda form: stack.post_signed(inbound_url, form), forms)

        keys = {number: uuid.uuid4().hex for number in numbers}
        answers: dict[str, Any] = {}

        def send(number: str) -> int:
            status, answers[number] = stack.call(
                "POST",
                "/v1/messages",
                {"to": number, "body": "Your order ships today."},
                {"Idempotency-Key": keys[number]},
            )
            return status

        sends = _Burst(send, numbers)
        accepted = {
            number: str(answers[number]["id"])
            for number, status in zip(numbers, sends.final, strict=True)
            if status == 202
        }
        created = _wait_for(
            stack.created_messages,
            lambda made: set(accepted.values()) <= {_message_id(e) for e in made},
        )
        callbacks = [
            (exchange, status)
            for exchange in created
            for status in [*CALLBACK_STATUSES, *rng.choices(CALLBACK_STATUSES, k=2)]
        ]
        rng.shuffle(callbacks)
        statuses = _Burst(
            lambda callback: stack.post_signed(
                callback[0]["form"]["StatusCallback"][0], _status_form(*callback)
            ),
            callbacks,
        )
        reported: dict[str, set[str]] = {}
        for (exchange, status), answer in zip(callbacks, statuses.final, strict=True):
            if answer == 200:
                reported.setdefault(str(_message_id(exchange)), set()).add(status)

        # Every message sent: those accepted, and any the stand-in got without a 202.
        tracked = set(accepted.values()) | {str(_message_id(e)) for e in created}

        def views() -> dict[str, dict[str, Any]]:
            """Each message as GET /v1/messages/{id} shows it (an empty one when it fails)."""
            seen = {}
            for message_id in sorted(tracked):
                status, view = stack.call("GET", f"/v1/messages/{message_id}")
                seen[message_id] = view if status == 200 else {}
            return seen

        final = _wait_for(
            views,
            lambda seen: all(
                view.get("status") == "read" and reported.get(message_id, set()) <= _history(view)
                for message_id, view in seen.items()
            ),
        )
        received_ok = [
            form["MessageSid"]
            for form, status in zip(forms, inbound.final, strict=True)
            if status == 200
        ]
        recorded = {
            sid for sid in received_ok if stack.call("GET", f"/v1/messages/{sid}")[0] == 200
        }
        events = bus.drain_until_quiet()
        created = stack.created_messages()
    answered, errors = requests_logged(log)
    return _concurrency_results(
        contacts=contacts,
        phases={"inbound_webhooks": inbound, "sends": sends, "status_callbacks": statuses},
        inbound_ok=received_ok,
        recorded=recorded,
        accepted=accepted,
        created=created,
        reported=reported,
        final=final,
        events=events,
        answered=answered,
        errors=errors,
    )


class _Burst:
    """``work`` on every item at once: a thread each, released together; what was answered
    5xx or not at all is then retried (a few at a time), as Twilio retries a webhook."""

    def __init__(self, work: Callable[[Any], int], items: Sequence[Any]) -> None:
        self.concurrent = len(items)
        self.first: list[int | None] = []
        self.latencies: list[float] = []
        if items:
            self._at_once(work, items)
        self.final = list(self.first)
        self.retried: list[int | None] = []
        for attempt in range(1, TWILIO_RETRIES + 1):
            failed = [index for index, status in enumerate(self.final) if _failed(status)]
            if not failed:
                break
            time.sleep(0.5 * attempt)
            with ThreadPoolExecutor(RETRY_CONCURRENCY) as pool:
                answers = list(pool.map(_status_or_none, [partial(work, items[i]) for i in failed]))
            for index, status in zip(failed, answers, strict=True):
                self.final[index] = status
                self.retried.append(status)

    def _at_once(self, work: Callable[[Any], int], items: Sequence[Any]) -> None:
        released: list[float] = []
        gate = threading.Barrier(len(items), action=lambda: released.append(time.perf_counter()))

        def at_once(item: Any) -> tuple[int | None, float]:
            gate.wait(timeout=REQUEST_SECONDS)
            status = _status_or_none(partial(work, item))
            return status, time.perf_counter()

        with ThreadPoolExecutor(len(items)) as pool:
            outcomes = list(pool.map(at_once, items))
        self.first = [status for status, _ in outcomes]
        self.latencies = sorted(done - released[0] for _, done in outcomes)

    def summary(self) -> dict[str, Any]:
        latencies = self.latencies or [0.0]
        return {
            "concurrent": self.concurrent,
            "first_answers": _by_status(self.first),
            "retried_answers": _by_status(self.retried),
            "final_answers": _by_status(self.final),
            "all_answered_ms": round(latencies[-1] * 1000),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000),
            "answered_after_15_s": sum(1 for seconds in self.latencies if seconds > 15),
        }


class _BusCapture:
    """Every event put on the gateway's bus, through a catch-all rule into a queue of moto's."""

    def __init__(self, endpoint: str) -> None:
        import boto3  # noqa: PLC0415

        session = boto3.Session(
            aws_access_key_id=LOCAL_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=LOCAL_AWS["AWS_DEFAULT_REGION"],
        )
        self._sqs = session.client("sqs", endpoint_url=endpoint)
        events = session.client("events", endpoint_url=endpoint)
        self._queue = self._sqs.create_queue(QueueName="bench-bus-capture")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="bench-bus-capture",
            EventBusName="EventBus",
            EventPattern=json.dumps({"source": ["whatsapp.gateway"]}),
        )
        events.put_targets(
            Rule="bench-bus-capture", EventBusName="EventBus", Targets=[{"Id": "q", "Arn": arn}]
        )

    def drain_until_quiet(self, quiet_seconds: float = 2.0) -> list[dict[str, Any]]:
        """Every event captured, once none has come for ``quiet_seconds`` (the last callbacks'
        events are put after their status is stored)."""
        captured: list[dict[str, Any]] = []
        deadline = time.monotonic() + SETTLE_SECONDS
        last = time.monotonic()
        while time.monotonic() - last < quiet_seconds and time.monotonic() < deadline:
            messages = self._sqs.receive_message(
                QueueUrl=self._queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for message in messages:
                captured.append(json.loads(message["Body"]))
                self._sqs.delete_message(
                    QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"]
                )
            if messages:
                last = time.monotonic()
        return captured


def _wait_for[T](read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Reads until ``done``, or SETTLE_SECONDS; the last reading."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while not done(seen := read()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return seen


def _history(view: dict[str, Any]) -> set[str]:
    """The statuses a message view's history holds."""
    return {entry["status"] for entry in view.get("status_history", [])}


def _status_form(exchange: dict[str, Any], status: str) -> dict[str, str]:
    """Twilio's status callback of a message the stand-in created."""
    message = exchange["answer"]
    return {
        "AccountSid": message["account_sid"],
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": message["from"],
        "MessageSid": message["sid"],
        "MessageStatus": status,
        "SmsSid": message["sid"],
        "SmsStatus": status,
        "To": message["to"],
    }


def _concurrency_results(
    *,
    contacts: int,
    phases: dict[str, _Burst],
    inbound_ok: list[str],
    recorded: set[str],
    accepted: dict[str, str],
    created: list[dict[str, Any]],
    reported: dict[str, set[str]],
    final: dict[str, Any],
    events: list[dict[str, Any]],
    answered: Counter[tuple[str, int]],
    errors: Counter[str],
) -> dict[str, Any]:
    by_type: dict[str, Counter[Any]] = {}
    for event in events:
        by_type.setdefault(event["detail-type"], Counter())[_event_key(event)] += 1
    received = by_type.get("message.received", Counter())
    changed = by_type.get("message.status_changed", Counter())
    opened = by_type.get("conversation.opened", Counter())
    sent_to = Counter(exchange["form"]["To"][0] for exchange in created)
    sent_ids = {_message_id(exchange) for exchange in created}
    lost = {
        "inbound_not_recorded": len(set(inbound_ok) - recorded),
        "inbound_without_event": sum(1 for sid in inbound_ok if not received[sid]),
        "sends_not_received_by_twilio": sum(1 for i in accepted.values() if i not in sent_ids),
        "sends_not_read": sum(1 for i in accepted.values() if final[i].get("status") != "read"),
        "statuses_not_in_history": sum(
            len(
                statuses
                - {e["status"] for e in final.get(message_id, {}).get("status_history", [])}
            )
            for message_id, statuses in reported.items()
        ),
        "read_without_event": sum(
            1
            for message_id, view in final.items()
            if view.get("status") == "read" and not changed[(message_id, "read")]
        ),
    }
    doubled = {
        "contacts_sent_twice_by_twilio": sum(n - 1 for n in sent_to.values()),
        "message_received_repeated": sum(n - 1 for n in received.values()),
        "status_changed_repeated": sum(n - 1 for n in changed.values()),
        "conversation_opened_repeated": sum(n - 1 for n in opened.values()),
    }
    failures = {f"{route} {status}": n for (route, status), n in answered.items() if status >= 500}
    requests = {name: [*phase.first, *phase.retried] for name, phase in phases.items()}
    answers = sum(1 for sent in requests.values() for status in sent if status is not None)
    if sum(answered.values()) < answers:
        # The log did not say what it answered: count what the benchmark itself saw.
        failures = {
            f"{name}: 5xx": sum(1 for s in sent if s is not None and s >= 500)
            for name, sent in requests.items()
        }
    for name, sent in requests.items():
        failures[f"{name}: no answer"] = sum(1 for status in sent if status is None)
    totals = {
        "5xx": sum(failures.values()),
        "lost": sum(lost.values()),
        "doubled": sum(doubled.values()),
    }
    return {
        "contacts": contacts,
        **{name: phase.summary() for name, phase in phases.items()},
        "status_callbacks_per_message": f"{', '.join(CALLBACK_STATUSES)} and "
        f"{DUPLICATE_CALLBACKS} duplicates, shuffled (seed {SEED})",
        "sends_accepted": len(accepted),
        # A 4xx to a valid send (409 for a new Idempotency-Key): neither 5xx nor lost.
        "sends_refused": contacts - len(accepted),
        "messages_created_by_the_stand_in": len(created),
        "events": {name: sum(counter.values()) for name, counter in sorted(by_type.items())},
        **totals,
        "5xx_by_kind": {name: n for name, n in failures.items() if n},
        "errors_logged": dict(errors.most_common(10)),
        "lost_by_kind": lost,
        "doubled_by_kind": doubled,
        "target": {"5xx": 0, "lost": 0, "doubled": 0},
        "target_met": not any(totals.values()),
        "definitions": DEFINITIONS,
    }


def _event_key(event: dict[str, Any]) -> Any:
    """What an event may be published for only once."""
    detail = event["detail"]
    match event["detail-type"]:
        case "message.received":
            return detail["message_id"]
        case "message.status_changed":
            return detail["message_id"], detail["status"]
        case "conversation.opened":
            return detail["sender"], detail["contact"], detail["category"]
    return None


# ---------------------------------------------------------------------- sustained

SUSTAINED_MESSAGES = 20_000  # issue 11's figure
SUSTAINED_WINDOW = 1_000
SUSTAINED_CONTACTS = 1_000  # +447700900000 to +447700900999, writing in turn


def sustained_inbound(messages: int = SUSTAINED_MESSAGES, concurrency: int = 8) -> dict[str, Any]:
    """``messages`` inbound webhooks in a row (``concurrency`` at a time, retried as Twilio
    retries), from contacts writing in turn: the rate of each ``SUSTAINED_WINDOW`` answered,
    the last against the first (target at least 0.8: the stack keeps its speed as its tables
    grow), and the moto server's resident memory before and after."""
    with running_stack(ROOT / "bench" / "local-stack-sustained.log") as stack:
        moto = _moto_server_pid(stack.aws)
        inbound_url = f"{stack.url}/webhooks/twilio/inbound"
        finals: list[int | None] = []

        def write_in(index: int) -> float:
            contact = f"+447700900{index % SUSTAINED_CONTACTS:03d}"
            form = inbound_form(contact, "hello", stack.settings)
            for _ in range(5):
                status = _status_or_none(lambda: stack.post_signed(inbound_url, form))
                if status == 200:
                    break
            finals.append(status)
            return time.perf_counter()

        rss_before = _rss_mib(moto)
        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            answered = [began, *sorted(pool.map(write_in, range(messages)))]
        rss_after = _rss_mib(moto)
    rates = [
        round(SUSTAINED_WINDOW / (answered[end] - answered[end - SUSTAINED_WINDOW]), 1)
        for end in range(SUSTAINED_WINDOW, len(answered), SUSTAINED_WINDOW)
    ]
    return {
        "messages": messages,
        "contacts": SUSTAINED_CONTACTS,
        "client_concurrency": concurrency,
        "seconds": round(answered[-1] - began, 1),
        "final_answers": _by_status(finals),
        f"per_second_each_{SUSTAINED_WINDOW}": rates,
        "last_against_first": round(rates[-1] / rates[0], 2),
        "target": 0.8,
        "target_met": rates[-1] / rates[0] >= 0.8,
        "moto_rss_mib": {"start": rss_before, "end": rss_after},
    }


def _moto_server_pid(endpoint: str) -> int:
    """The process of the moto server answering at ``endpoint`` (python -m infra.local.moto)."""
    port = str(urlsplit(endpoint).port).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with suppress(OSError):
            arguments = cmdline.read_bytes().split(b"\0")
            if b"infra.local.moto" in arguments and port in arguments:
                return int(cmdline.parent.name)
    raise LookupError(f"no moto server at {endpoint}")


def _rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return round(int(kib) / 1024, 1)
