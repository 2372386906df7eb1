"""Runs every benchmark and writes bench/results.json (also printed)."""

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import local_stack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
PRICES = ROOT / "bench" / "prices.json"
LAYER_PACKAGE = ROOT / "layers" / "whatsapp_gateway" / "whatsapp_gateway"
RUNS = 10
# Contacts of the local stack's throughput run (1,000 until 2026-12-02: see docs/decisions.md).
LOCAL_STACK_MESSAGES = 300

_TIMED_IMPORT = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def _lambda_like_tree(code_uri: str) -> tuple[Path, dict[str, str]]:
    """Copies the function and the shared package as Lambda lays them out (/var/task,
    /opt/python), without compiled bytecode: Lambda's file system is read-only, so the
    package's modules are compiled at every cold start there too."""
    root = Path(tempfile.mkdtemp(prefix="bench-lambda-"))
    task, layer = root / "task", root / "opt-python"
    shutil.copytree(ROOT / code_uri, task)
    shutil.copytree(LAYER_PACKAGE, layer / "whatsapp_gateway")
    env = {
        **os.environ,
        "PYTHONPATH": f"{task}{os.pathsep}{layer}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "whatsapp-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "WhatsAppGateway",
    }
    return root, env


def _median_import_seconds(module: str, env: dict[str, str], cwd: Path) -> float:
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", _TIMED_IMPORT.format(module=module)],
                env=env,
                cwd=cwd,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for _ in range(RUNS)
    ]
    return statistics.median(samples)


def cold_imports() -> dict[str, Any]:
    """Import time of each function's handler module (every function of template.yaml) in a
    fresh process, next to `import boto3` in the same tree. The webhooks have a target: Twilio
    waits on their cold starts."""
    from infra.sam_template import events, functions  # noqa: PLC0415

    webhooks = {name for name, event in events("HttpApi") if event["Path"].startswith("/webhooks/")}
    results: dict[str, Any] = {}
    for name, properties in functions().items():
        module = properties["Handler"].rsplit(".", 1)[0]
        root, env = _lambda_like_tree(properties["CodeUri"])
        try:
            boto3_seconds = _median_import_seconds("boto3", env, root)
            handler_seconds = _median_import_seconds(module, env, root)
        finally:
            shutil.rmtree(root)
        results[name] = {
            "handler_import_ms": round(handler_seconds * 1000, 1),
            "boto3_import_ms": round(boto3_seconds * 1000, 1),
            "ratio_to_boto3": round(handler_seconds / boto3_seconds, 2),
            "target_ratio": 1.5 if name in webhooks else None,
            "runs": RUNS,
            "statistic": "median",
        }
    return results


_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "whatsapp-gateway",
    "POWERTOOLS_METRICS_NAMESPACE": "WhatsAppGateway",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "test-auth-token-0000",
    "WHATSAPP_FROM": "whatsapp:+14155238886",
    "PUBLIC_BASE_URL": "https://gateway.example.test",
    "WINDOWS_TABLE": "WindowsTable",
    "MESSAGES_TABLE": "MessagesTable",
    "TEMPLATES_TABLE": "TemplatesTable",
    "IDEMPOTENCY_TABLE": "IdempotencyTable",
    "TEMPLATE_SYNC_FUNCTION": "TemplateSyncFunction",
    "EVENT_BUS_NAME": "EventBus",
}


@contextmanager
def _gateway_on_moto(
    *, server: bool = False, billed: defaultdict[str, float] | None = None
) -> Iterator[Counter[str]]:
    """The template's resources on moto (in-process, or a moto server); yields a counter of
    AWS calls by operation (botocore's before-call events), which the caller clears. With
    ``billed``, what the calls are billed as is added up there too (see ``_billing``)."""
    import boto3  # noqa: PLC0415  (after the environment is set for moto)
    from moto import mock_aws  # noqa: PLC0415

    from infra.local.moto import moto_server  # noqa: PLC0415
    from infra.sam_template import (  # noqa: PLC0415
        create_event_buses,
        create_queues,
        create_tables,
    )
    from whatsapp_gateway.runtime import runtime  # noqa: PLC0415

    os.environ.update(_ENVIRONMENT)
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: object) -> None:
        # event_name: before-call.<service>.<Operation>
        service, operation = event_name.split(".", 2)[1:]
        calls[f"{service}.{operation}"] += 1

    with moto_server() if server else mock_aws():
        boto3.setup_default_session()
        create_tables(boto3.client("dynamodb"))
        create_event_buses(boto3.client("events"))
        os.environ["SEND_QUEUE_URL"] = create_queues(boto3.client("sqs"))["SendQueue"]
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call", count)
        if billed is not None:
            # Before the runtime builds its clients: a client keeps the hooks it was built with.
            boto3.DEFAULT_SESSION.events.register("provide-client-params", _billing(billed))
        runtime.cache_clear()
        yield calls
        runtime.cache_clear()


def _billing(billed: defaultdict[str, float]) -> Callable[..., None]:
    """A botocore hook adding what each call is billed as to ``billed``: DynamoDB request
    units (items of at most 1 KB written and 4 KB read, as the gateway's are; a write that sets
    an index's key writes that index too), EventBridge events (each under 64 KB), SQS
    requests."""
    from infra.sam_template import resources  # noqa: PLC0415

    index_keys = {
        table: {
            key["AttributeName"]
            for index in resource["Properties"].get("GlobalSecondaryIndexes", [])
            for key in index["KeySchema"]
        }
        for table, resource in resources("AWS::DynamoDB::Table").items()
    }

    def read(request: dict[str, Any]) -> float:
        return 1.0 if request.get("ConsistentRead") is True else 0.5

    def write(request: dict[str, Any]) -> float:
        written = set(request.get("Item", {}))
        if expression := request.get("UpdateExpression"):
            names = request.get("ExpressionAttributeNames", {})
            tokens = re.findall(r"(?<![:\w])#?\w+", expression)
            # ``a = if_not_exists(a, ...)`` leaves a set key as it is: no index write.
            kept = re.findall(r"if_not_exists\(\s*(#?\w+)", expression)
            written |= {names.get(token, token) for token in tokens}
            written -= {names.get(token, token) for token in kept}
        return 1.0 + len(index_keys.get(request["TableName"], set()) & written)

    def dynamodb_units(operation: str, params: dict[str, Any]) -> tuple[float, float]:
        """(read, write) request units of one call; a transaction's items count twice."""
        match operation:
            case "GetItem" | "Query" | "Scan":
                return read(params), 0.0
            case "TransactGetItems":
                return 2.0 * len(params["TransactItems"]), 0.0
            case "PutItem" | "UpdateItem" | "DeleteItem":
                return 0.0, write(params)
            case "BatchWriteItem":
                return 0.0, sum(
                    write({"TableName": table, **request.get("PutRequest", {})})
                    for table, requests in params["RequestItems"].items()
                    for request in requests
                )
            case "TransactWriteItems":
                return 0.0, sum(
                    2.0 * write(request)
                    for item in params["TransactItems"]
                    for request in item.values()
                )
        raise ValueError(f"no billing rule for dynamodb.{operation}")

    def bill(params: dict[str, Any], event_name: str, **_: object) -> None:
        # event_name: provide-client-params.<service>.<Operation>
        service, operation = event_name.split(".")[1:3]
        if service == "dynamodb":
            reads, writes = dynamodb_units(operation, params)
            billed["dynamodb_read_units"] += reads
            billed["dynamodb_write_units"] += writes
        elif service == "eventbridge" and operation == "PutEvents":
            billed["eventbridge_events"] += len(params["Entries"])
        elif service == "sqs":
            billed["sqs_requests"] += 1

    return bill


def _per(billed: Mapping[str, float], divisor: int) -> dict[str, float]:
    return {name: round(value / divisor, 3) for name, value in sorted(billed.items())}


def _summary(counter: Counter[str], divisor: int = 1) -> dict[str, Any]:
    return {
        "total": round(sum(counter.values()) / divisor, 2),
        "by_operation": {name: round(n / divisor, 2) for name, n in sorted(counter.items())},
    }


def inbound_aws_calls(messages: int = 50) -> dict[str, Any]:
    """AWS calls made per inbound message (moto in-process): new messages, Twilio's retry of a
    delivered one, and an opt-out keyword."""
    from tests.integration.conftest import (  # noqa: PLC0415
        LambdaContext,
        inbound_form,
        webhook_event,
    )

    with _gateway_on_moto() as calls:
        from inbound_webhook import app  # noqa: PLC0415

        context = LambdaContext()

        def deliver(**fields: str) -> Counter[str]:
            calls.clear()
            response = app.handler(webhook_event(inbound_form(**fields)), context)
            assert response["statusCode"] == 200, response
            return Counter(calls)

        deliver(MessageSid="SM" + "f" * 32)  # warm-up: the clients are built
        per_message: Counter[str] = Counter()
        for index in range(messages):
            per_message += deliver(
                MessageSid=f"SM{index:032x}", From=f"whatsapp:+1500555{index:04d}"
            )
        retry = deliver(MessageSid=f"SM{0:032x}", From="whatsapp:+15005550000")
        opt_out = deliver(MessageSid="SM" + "e" * 32, Body="STOP")

    return {
        "new_message": _summary(per_message, messages),
        "twilio_retry_of_a_delivered_message": _summary(retry),
        "opt_out_keyword": _summary(opt_out),
        "messages": messages,
        "target_max_calls_per_message": 3,
    }


def send_worker_batch(contacts: int = 10, twilio_latency: float = 0.2) -> dict[str, Any]:
    """The send worker on a batch of ``contacts`` records of as many FIFO groups, the fake
    Twilio answering after ``twilio_latency`` seconds: groups sent concurrently, next to the same
    batch one record at a time; and the AWS and Twilio calls per sent message."""
    from tests.fake_twilio import FakeTwilio  # noqa: PLC0415
    from tests.integration.conftest import (  # noqa: PLC0415
        LambdaContext,
        SendQueueDriver,
        inbound_form,
        post_message,
        webhook_event,
    )
    from whatsapp_gateway.adapters.twilio_rest import TwilioRest  # noqa: PLC0415
    from whatsapp_gateway.config import TwilioSettings  # noqa: PLC0415
    from whatsapp_gateway.runtime import runtime  # noqa: PLC0415

    class SlowTwilio(FakeTwilio):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            time.sleep(twilio_latency)
            return super().request(*args, **kwargs)

    def one_batch(concurrency: int) -> tuple[float, Counter[str], int, dict[str, Any]]:
        os.environ["SEND_CONCURRENCY"] = str(concurrency)
        billed: defaultdict[str, float] = defaultdict(float)
        with _gateway_on_moto(server=True, billed=billed) as calls:
            from inbound_webhook import app as inbound  # noqa: PLC0415
            from send_worker import app as worker  # noqa: PLC0415

            context = LambdaContext()
            fake = SlowTwilio()
            runtime().__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=fake)
            accept_calls: Counter[str] = Counter()
            accept_billed: defaultdict[str, float] = defaultdict(float)
            for index in range(contacts + 1):
                contact = f"+1500555{index:04d}"
                inbound.handler(
                    webhook_event(
                        inbound_form(MessageSid=f"SM{index:032x}", From=f"whatsapp:{contact}")
                    ),
                    context,
                )
                calls.clear()
                billed.clear()
                assert post_message({"to": contact, "body": f"hello {index}"})[0] == 202
                accept_calls += calls
                for name, value in billed.items():
                    accept_billed[name] += value
            queue = SendQueueDriver(worker.handler, context)
            queue.run(limit=1)  # warm-up on one contact: settings, clients, Twilio's client
            event = queue.receive_event()
            assert len(event["Records"]) == contacts
            calls.clear()
            billed.clear()
            started = time.perf_counter()
            answer = worker.handler(event, context)
            seconds = time.perf_counter() - started
            worker_calls = Counter(calls)  # the event source's deletes are not the worker's
            assert answer["batchItemFailures"] == [], answer
            posts = sum(1 for r in fake.requests if r.method == "POST") - 1
            assert posts == contacts
            accepted = {
                "aws_calls": _summary(accept_calls, contacts + 1),
                "billed": _per(accept_billed, contacts + 1),
            }
            return (
                seconds,
                worker_calls,
                posts,
                {"accepted": accepted, "sent": _per(billed, contacts)},
            )

    concurrent_seconds, calls, twilio_calls, billed = one_batch(concurrency=10)
    sequential_seconds, _, _, _ = one_batch(concurrency=1)
    dynamodb = Counter({k: v for k, v in calls.items() if k.startswith("dynamodb.")})
    return {
        "records": contacts,
        "groups": contacts,
        "twilio_latency_ms": twilio_latency * 1000,
        "concurrent_ms": round(concurrent_seconds * 1000, 1),
        "one_at_a_time_ms": round(sequential_seconds * 1000, 1),
        "speedup": round(sequential_seconds / concurrent_seconds, 2),
        "target_speedup": 6,
        "per_sent_message": {
            "twilio_calls": round(twilio_calls / contacts, 2),
            "dynamodb_calls": _summary(dynamodb, contacts),
            "aws_calls": _summary(calls, contacts),
            "billed": billed["sent"],
            "target_twilio_calls": 1,
            "target_max_dynamodb_calls": 4,
        },
        "per_accepted_message": billed["accepted"],
    }


def template_sync(templates: int = 6000) -> dict[str, Any]:
    """A sync of WhatsApp's cap of templates for one account from the fake Content API, on a
    moto server: the DynamoDB calls and the templates written by a first sync (all new), a
    second (nothing changed) and a third (10 changed); and the first sync's wall time next to
    the time to merely list and parse the pages."""
    import boto3  # noqa: PLC0415

    from tests.fake_content import FakeContent, approval, content  # noqa: PLC0415
    from whatsapp_gateway.adapters.twilio_rest import TwilioRest  # noqa: PLC0415
    from whatsapp_gateway.config import TwilioSettings  # noqa: PLC0415
    from whatsapp_gateway.runtime import runtime  # noqa: PLC0415
    from whatsapp_gateway.template_sync import sync_templates  # noqa: PLC0415

    fake = FakeContent(contents=[content(number) for number in range(templates)])
    written: Counter[str] = Counter()

    def count_items(params: dict[str, Any], **_: object) -> None:
        written["templates"] += sum(
            1
            for requests in params["RequestItems"].values()
            for request in requests
            if "PutRequest" in request
        )

    with _gateway_on_moto(server=True) as calls:
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register(
            "provide-client-params.dynamodb.BatchWriteItem", count_items
        )
        deps = runtime()
        deps.__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=fake)
        account = deps.accounts().accounts[0]
        deps.twilio.templates(account)  # warm-up: the SDK's client

        started = time.perf_counter()
        listed = deps.twilio.templates(account)
        parse_seconds = time.perf_counter() - started

        def sync() -> tuple[float, dict[str, Any]]:
            calls.clear()
            written.clear()
            started = time.perf_counter()
            result = sync_templates(
                account,
                twilio=deps.twilio,
                store=deps.templates,
                events=deps.events,
                now=deps.clock.now(),
            )
            seconds = time.perf_counter() - started
            dynamodb = Counter({k: v for k, v in calls.items() if k.startswith("dynamodb.")})
            return seconds, {
                "templates_changed": result.written,
                "templates_written": written["templates"],
                "dynamodb_calls": _summary(dynamodb),
                "events_put_calls": calls["eventbridge.PutEvents"],
            }

        first_seconds, first = sync()
        second_seconds, second = sync()
        for item in fake.contents[:10]:
            item["approval_requests"] = approval("paused")
        _, third = sync()

    assert len(listed) == templates
    return {
        "templates": templates,
        "pages": (templates + 999) // 1000,
        "list_and_parse_ms": round(parse_seconds * 1000, 1),
        "first_sync_ms": round(first_seconds * 1000, 1),
        "ratio_first_sync_to_parse": round(first_seconds / parse_seconds, 2),
        "unchanged_sync_ms": round(second_seconds * 1000, 1),
        "ratio_unchanged_sync_to_parse": round(second_seconds / parse_seconds, 2),
        "first_sync_all_new": first,
        "second_sync_nothing_changed": second,
        "third_sync_10_changed": third,
        "target": "at most one write per changed template, none for an unchanged one",
    }


STATUS_CALLBACKS = ("queued", "sent", "delivered", "read")


def status_callbacks(messages: int = 20) -> dict[str, Any]:
    """AWS calls (moto in-process) of Twilio's status callbacks of each sent message: queued,
    sent, delivered, read, signed as Twilio signs them, through the status webhook handler;
    and what they are billed as."""
    from tests.fake_twilio import FakeTwilio  # noqa: PLC0415
    from tests.integration.conftest import (  # noqa: PLC0415
        LambdaContext,
        SendQueueDriver,
        inbound_form,
        post_message,
        status_callback_event,
        webhook_event,
    )
    from whatsapp_gateway.adapters.twilio_rest import TwilioRest  # noqa: PLC0415
    from whatsapp_gateway.config import TwilioSettings  # noqa: PLC0415
    from whatsapp_gateway.runtime import runtime  # noqa: PLC0415

    billed: defaultdict[str, float] = defaultdict(float)
    with _gateway_on_moto(billed=billed) as calls:
        from inbound_webhook import app as inbound  # noqa: PLC0415
        from send_worker import app as worker  # noqa: PLC0415
        from status_webhook import app as status  # noqa: PLC0415

        context = LambdaContext()
        fake = FakeTwilio()
        runtime().__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=fake)
        queue = SendQueueDriver(worker.handler, context)
        callbacks: list[list[dict[str, Any]]] = []
        for index in range(messages + 1):  # the first message warms the status handler up
            contact = f"+1500557{index:04d}"
            form = inbound_form(MessageSid=f"SM{index:032x}", From=f"whatsapp:{contact}")
            assert inbound.handler(webhook_event(form), context)["statusCode"] == 200
            code, accepted = post_message({"to": contact, "body": "Your order ships today."})
            assert code == 202, accepted
            queue.run()
            answer = fake.answers[-1].body
            assert isinstance(answer, dict)
            sid = str(answer["sid"])
            callbacks.append(
                [status_callback_event(sid, s, message_id=accepted["id"]) for s in STATUS_CALLBACKS]
            )

        def deliver(events: list[dict[str, Any]]) -> None:
            for event in events:
                assert status.handler(event, context)["statusCode"] == 200

        deliver(callbacks[0])
        calls.clear()
        billed.clear()
        started = time.perf_counter()
        for events in callbacks[1:]:
            deliver(events)
        seconds = time.perf_counter() - started
        view = runtime().messages.message_view(accepted["id"])
        assert view is not None
        assert view.status == "read"

    return {
        "messages": messages,
        "callbacks_per_message": list(STATUS_CALLBACKS),
        "handler_ms_per_callback": round(seconds / (messages * len(STATUS_CALLBACKS)) * 1000, 2),
        "per_message": {"aws_calls": _summary(calls, messages), "billed": _per(billed, messages)},
    }


FORGED_TARGET_MS = 50
# A forged request is timed again until this many runs, or until the runs so far took this
# long: today's quadratic check takes tens of seconds a run, the target tens of milliseconds.
FORGED_RUNS = 7
FORGED_BUDGET_SECONDS = 3.0
MIB = 1024 * 1024


def _padded(real: list[tuple[str, str]], filler: int, size: int) -> list[tuple[str, str]]:
    """``real`` followed by ``filler`` fields of a forger's, padded to ``size`` bytes encoded."""
    names = [f"f{index:05d}" for index in range(filler)]
    missing = size - len(urlencode(real + [(name, "") for name in names]))
    each, extra = divmod(missing, filler)
    return real + [(name, "x" * (each + (i < extra))) for i, name in enumerate(names)]


def _forged_shapes(real: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """The forms a forger posts: ``real`` (a genuine form; an inbound one's Body padded to
    1 KB); the most the webhooks check a signature for (MAX_FORM_FIELDS fields, MAX_FORM_BYTES
    bytes); the issue's 12,000 empty fields (85 KB); 20,000 fields padded to 1 MiB. The real
    fields come first, so the configured AccountSid is the one found."""
    from whatsapp_gateway.webhooks import MAX_FORM_BYTES, MAX_FORM_FIELDS  # noqa: PLC0415

    base = len(urlencode(real))
    return {
        "normal": [(k, v + "x" * max(0, 1024 - base) if k == "Body" else v) for k, v in real],
        "at_the_caps": _padded(real, MAX_FORM_FIELDS - len(real), MAX_FORM_BYTES),
        "fields_12000": real + [(f"f{i}", "") for i in range(12_000)],
        "fields_20000_1mib": _padded(real, 20_000, MIB),
    }


def _refused(handler: Callable[..., Any], event: dict[str, Any], what: str) -> int:
    """The status the handler answers a forged request with; raises unless it is a 4xx."""
    from tests.integration.conftest import LambdaContext  # noqa: PLC0415

    try:
        response = handler(event, LambdaContext())
    except Exception as error:
        raise RuntimeError(f"{what}: the handler raised") from error
    status = int(response["statusCode"])
    if not 400 <= status < 500:
        raise RuntimeError(f"{what}: answered {status}, not a 4xx")
    return status


def forged_webhooks() -> dict[str, Any]:
    """The handler time to answer a forged webhook (the configured AccountSid, a well-formed
    but wrong X-Twilio-Signature) of each of ``_forged_shapes``, in-process on moto, for both
    webhooks: median of up to FORGED_RUNS runs after a warm-up. The answer's status and the
    AWS calls it made are recorded; the target is met when the 1 MiB request is answered in
    under FORGED_TARGET_MS. A handler that raises, answers 5xx or accepts a forged request
    stops the benchmark."""
    from tests.integration.conftest import inbound_form, webhook_event  # noqa: PLC0415

    signature = base64.b64encode(hashlib.sha1(b"forged").digest()).decode()  # noqa: S324
    status_form = {
        "AccountSid": _ENVIRONMENT["TWILIO_ACCOUNT_SID"],
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": _ENVIRONMENT["WHATSAPP_FROM"],
        "MessageSid": "SM" + "0" * 32,
        "MessageStatus": "delivered",
        "SmsSid": "SM" + "0" * 32,
        "SmsStatus": "delivered",
        "To": "whatsapp:+15005550006",
    }
    webhooks = {
        "inbound_webhook": ("/webhooks/twilio/inbound", "", list(inbound_form().items())),
        "status_webhook": (
            "/webhooks/twilio/status",
            "message_id=" + "0" * 32,
            list(status_form.items()),
        ),
    }
    results: dict[str, Any] = {}
    with _gateway_on_moto() as calls:
        from inbound_webhook import app as inbound  # noqa: PLC0415
        from status_webhook import app as status  # noqa: PLC0415
        from whatsapp_gateway.observability import logger  # noqa: PLC0415

        handlers = {"inbound_webhook": inbound.handler, "status_webhook": status.handler}
        level = logger.log_level
        logger.setLevel("ERROR")  # a warning line per rejected request would bury the results
        try:
            for name, (path, query, real) in webhooks.items():
                forms = _forged_shapes(real)
                events = {
                    case: webhook_event(form, path=path, query=query, signature=signature)
                    for case, form in forms.items()
                }
                _refused(handlers[name], events["normal"], f"{name}, warm-up")
                cases: dict[str, Any] = {}
                for case, form in forms.items():
                    calls.clear()
                    samples: list[float] = []
                    while len(samples) < FORGED_RUNS and sum(samples) < FORGED_BUDGET_SECONDS:
                        started = time.perf_counter()
                        status_code = _refused(handlers[name], events[case], f"{name}, {case}")
                        samples.append(time.perf_counter() - started)
                    cases[case] = {
                        "fields": len(form),
                        "body_bytes": len(urlencode(form)),
                        "status": status_code,
                        "median_ms": round(statistics.median(samples) * 1000, 2),
                        "runs": len(samples),
                        "aws_calls_per_request": round(sum(calls.values()) / len(samples), 2),
                    }
                for case in cases.values():
                    case["ratio_to_normal"] = round(
                        case["median_ms"] / cases["normal"]["median_ms"], 2
                    )
                results[name] = {
                    **cases,
                    "target_ms": FORGED_TARGET_MS,
                    "target_met": cases["fields_20000_1mib"]["median_ms"] < FORGED_TARGET_MS,
                }
        finally:
            logger.setLevel(level)
    results["signature"] = "well-formed (base64 of 20 bytes) but wrong"
    results["statistic"] = (
        f"median of up to {FORGED_RUNS} runs after a warm-up, fewer once they took "
        f"{FORGED_BUDGET_SECONDS:g} s"
    )
    return results


def deployment_sizes() -> dict[str, Any]:
    """The unzipped size of each function with its layer, from `sam build`'s output (built by
    `make build` when absent)."""
    from infra.sam_build import SIZE_TARGET_MB, ensure_built, function_sizes  # noqa: PLC0415

    return {
        "functions": function_sizes(ensure_built()),
        "unit": "MB of 1,048,576 bytes, as Lambda's limits count",
        "target_mb": SIZE_TARGET_MB,
    }


# What no benchmark measures, said plainly. A warm API or status invocation makes 2 to 4 AWS
# calls of about 10 ms each in-region, plus its own CPU.
ASSUMED_INVOCATION_MS = 100


def cost_per_million(send_worker: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The AWS cost of a million outbound messages at bench/prices.json's list prices, from the
    calls counted by the send worker benchmark (the API's acceptance and the worker's send) and
    the status callbacks benchmark (4 callbacks a message)."""
    from infra.sam_template import functions, queue_consumers  # noqa: PLC0415

    prices = {name: line["usd"] for name, line in json.loads(PRICES.read_text())["prices"].items()}
    memory_gb = {name: fn["MemorySize"] / 1024 for name, fn in functions().items()}
    [batch] = [m["BatchSize"] for f, _, m in queue_consumers() if f == "SendWorkerFunction"]
    accepted = send_worker["per_accepted_message"]["billed"]
    sent = send_worker["per_sent_message"]["billed"]
    callbacks = status["per_message"]["billed"]
    per_callback = len(status["callbacks_per_message"])
    # Invocations of each function per message, and the seconds each is billed for: the
    # worker's measured batch (its Twilio calls answered in the fake's 200 ms), the others
    # the assumption.
    invocations = {
        "ApiFunction": (1.0, ASSUMED_INVOCATION_MS / 1000),
        "SendWorkerFunction": (1 / batch, send_worker["concurrent_ms"] / 1000),
        "StatusWebhookFunction": (float(per_callback), ASSUMED_INVOCATION_MS / 1000),
    }

    def total(name: str) -> float:
        return float(sum(part.get(name, 0.0) for part in (accepted, sent, callbacks)))

    quantities = {
        "http_api_requests_per_million": 1.0 + per_callback,
        "lambda_arm64_requests_per_million": sum(n for n, _ in invocations.values()),
        "lambda_arm64_gb_second": sum(
            n * seconds * memory_gb[name] for name, (n, seconds) in invocations.items()
        ),
        "dynamodb_on_demand_write_request_units_per_million": total("dynamodb_write_units"),
        "dynamodb_on_demand_read_request_units_per_million": total("dynamodb_read_units"),
        # Lambda's event source: one receive and one batch delete per batch.
        "sqs_fifo_requests_per_million": total("sqs_requests") + 2 / batch,
        "eventbridge_custom_events_per_million": total("eventbridge_events"),
    }
    breakdown = {
        name: {
            "per_message": round(quantity, 4),
            "usd_per_million_messages": round(
                quantity * prices[name] * (1 if name.endswith("_per_million") else 1_000_000), 2
            ),
        }
        for name, quantity in quantities.items()
    }
    usd = sum(line["usd_per_million_messages"] for line in breakdown.values())
    return {
        "usd_per_million_messages": round(usd, 2),
        "target_usd": 15,
        "breakdown": breakdown,
        "prices": str(PRICES.relative_to(ROOT)),
        "assumptions": [
            f"API and status invocations billed {ASSUMED_INVOCATION_MS} ms each at their "
            "configured memory; the worker's batch its measured time",
            "free-form messages without an Idempotency-Key; a template send adds one read",
            "items under 1 KB written, 4 KB read; events under 64 KB",
            "left out: free tiers, cold starts' init time, CloudWatch logs and metrics, X-Ray, "
            "Secrets Manager (cached for 5 minutes), the event source's idle polls (a fixed "
            "monthly cost), inbound messages",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sustained-messages",
        type=int,
        default=local_stack.SUSTAINED_MESSAGES,
        help="inbound webhooks of the local stack's sustained run (default: issue 11's "
        "%(default)s, about 8 minutes on the 2-core development machine)",
    )
    sustained_messages = parser.parse_args().sustained_messages
    # Stopped from outside: the servers and stacks started so far are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.perf_counter()
    durations: dict[str, float] = {}

    def timed[T](name: str, benchmark: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return benchmark()
        finally:
            durations[name] = round(time.perf_counter() - started, 1)

    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cold_import": timed("cold_import", cold_imports),
        "deployment_size": timed("deployment_size", deployment_sizes),
        "inbound_aws_calls": timed("inbound_aws_calls", inbound_aws_calls),
        "send_worker_batch": timed("send_worker_batch", send_worker_batch),
        "status_callbacks": timed("status_callbacks", status_callbacks),
        "template_sync": timed("template_sync", template_sync),
        "forged_webhooks": timed("forged_webhooks", forged_webhooks),
        "local_stack": timed("local_stack", lambda: local_stack.throughput(LOCAL_STACK_MESSAGES)),
        "local_stack_concurrency": timed("local_stack_concurrency", local_stack.concurrency),
        "local_stack_sustained": timed(
            "local_stack_sustained", lambda: local_stack.sustained_inbound(sustained_messages)
        ),
    }
    results["cost_per_million_outbound"] = cost_per_million(
        results["send_worker_batch"], results["status_callbacks"]
    )
    results["bench_seconds"] = {**durations, "total": round(time.perf_counter() - began, 1)}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    cost = results["cost_per_million_outbound"]
    for name, line in cost["breakdown"].items():
        print(f"{name:>52}  ${line['usd_per_million_messages']:6.2f}")
    print(f"{'AWS per million outbound messages':>52}  ${cost['usd_per_million_messages']:6.2f}")
    forged = results["forged_webhooks"]
    concurrent = results["local_stack_concurrency"]
    for name in ("inbound_webhook", "status_webhook"):
        worst = forged[name]["fields_20000_1mib"]
        print(
            f"{'forged 1 MiB ' + name:>52}  {worst['status']} in {worst['median_ms']:.1f} ms: "
            f"target {FORGED_TARGET_MS} ms {'met' if forged[name]['target_met'] else 'MISSED'}"
        )
    print(
        f"{'local stack under concurrency: 5xx, lost, doubled':>52}  {concurrent['5xx']}, "
        f"{concurrent['lost']}, {concurrent['doubled']}: target 0, 0, 0 "
        f"{'met' if concurrent['target_met'] else 'MISSED'}"
    )
    sustained = results["local_stack_sustained"]
    label = f"local stack, {sustained['messages']:,} inbound in a row: last/first"
    print(
        f"{label:>52}  "
        f"{sustained['last_against_first']:.2f}x: target {sustained['target']}x "
        f"{'met' if sustained['target_met'] else 'MISSED'}; moto "
        f"{sustained['moto_rss_mib']['start']} -> {sustained['moto_rss_mib']['end']} MiB"
    )


if __name__ == "__main__":
    main()
