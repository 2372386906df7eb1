"""Runs every benchmark and writes bench/results.json (also printed)."""

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
LAYER_PACKAGE = ROOT / "layers" / "whatsapp_gateway" / "whatsapp_gateway"
RUNS = 10

_TIMED_IMPORT = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def _lambda_like_tree(function: str) -> tuple[Path, dict[str, str]]:
    """Copies the function and the shared package as Lambda lays them out (/var/task,
    /opt/python), without compiled bytecode: Lambda's file system is read-only, so the
    package's modules are compiled at every cold start there too."""
    root = Path(tempfile.mkdtemp(prefix="bench-lambda-"))
    task, layer = root / "task", root / "opt-python"
    shutil.copytree(ROOT / "functions" / function, task)
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
    """Import time of each handler module in a fresh process, next to `import boto3`."""
    results: dict[str, Any] = {}
    for function in ("inbound_webhook", "status_webhook"):
        root, env = _lambda_like_tree(function)
        try:
            boto3_seconds = _median_import_seconds("boto3", env, root)
            handler_seconds = _median_import_seconds("app", env, root)
        finally:
            shutil.rmtree(root)
        results[function] = {
            "handler_import_ms": round(handler_seconds * 1000, 1),
            "boto3_import_ms": round(boto3_seconds * 1000, 1),
            "ratio_to_boto3": round(handler_seconds / boto3_seconds, 2),
            "target_ratio": 1.5,
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
def _gateway_on_moto(*, server: bool = False) -> Iterator[Counter[str]]:
    """The template's resources on moto (in-process, or a moto server); yields a counter of
    AWS calls by operation (botocore's before-call events), which the caller clears."""
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
        runtime.cache_clear()
        yield calls
        runtime.cache_clear()


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

    def one_batch(concurrency: int) -> tuple[float, Counter[str], int]:
        os.environ["SEND_CONCURRENCY"] = str(concurrency)
        with _gateway_on_moto(server=True) as calls:
            from inbound_webhook import app as inbound  # noqa: PLC0415
            from send_worker import app as worker  # noqa: PLC0415

            context = LambdaContext()
            fake = SlowTwilio()
            runtime().__dict__["twilio"] = TwilioRest(TwilioSettings.from_environ(), transport=fake)
            for index in range(contacts + 1):
                contact = f"+1500555{index:04d}"
                inbound.handler(
                    webhook_event(
                        inbound_form(MessageSid=f"SM{index:032x}", From=f"whatsapp:{contact}")
                    ),
                    context,
                )
                assert post_message({"to": contact, "body": f"hello {index}"})[0] == 202
            queue = SendQueueDriver(worker.handler, context)
            queue.run(limit=1)  # warm-up on one contact: settings, clients, Twilio's client
            event = queue.receive_event()
            assert len(event["Records"]) == contacts
            calls.clear()
            started = time.perf_counter()
            answer = worker.handler(event, context)
            seconds = time.perf_counter() - started
            worker_calls = Counter(calls)  # the event source's deletes are not the worker's
            assert answer["batchItemFailures"] == [], answer
            posts = sum(1 for r in fake.requests if r.method == "POST") - 1
            assert posts == contacts
            return seconds, worker_calls, posts

    concurrent_seconds, calls, twilio_calls = one_batch(concurrency=10)
    sequential_seconds, _, _ = one_batch(concurrency=1)
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
            "target_twilio_calls": 1,
            "target_max_dynamodb_calls": 4,
        },
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


def local_stack(messages: int = 1000, concurrency: int = 8) -> dict[str, Any]:
    """`make local` over HTTP: start-up to the first healthy answer; then ``messages`` inbound
    webhooks (one per contact, ``concurrency`` at a time) and as many sends (accepted -> the
    Twilio stand-in received them), counted so that none is lost or doubled."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from infra.local.defaults import (  # noqa: PLC0415
        LOCAL_ACCOUNT_SID,
        LOCAL_AUTH_TOKEN,
        LOCAL_SENDER,
    )
    from infra.local.inbound import inbound_form, post_signed  # noqa: PLC0415
    from infra.local.moto import free_port  # noqa: PLC0415

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        "TWILIO_ACCOUNT_SID": LOCAL_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": LOCAL_AUTH_TOKEN,
        "WHATSAPP_FROM": LOCAL_SENDER,
        "PUBLIC_BASE_URL": url,
    }
    # No credentials given: the stack runs its Twilio stand-in with its own defaults.
    environment = {**os.environ, "PORT": str(port)}
    environment["PYTHONPATH"] = os.pathsep.join(
        str(ROOT / part) for part in ("layers/whatsapp_gateway", "functions", ".")
    )
    # The earlier benchmarks' settings stay out: the stack uses its own defaults.
    for name in (*_ENVIRONMENT, "TWILIO_API_URL", "AWS_ENDPOINT_URL", "SEND_QUEUE_URL"):
        environment.pop(name, None)

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  (the local stack)
            url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())

    started = time.perf_counter()
    with (ROOT / "bench" / "local-stack.log").open("w") as output:
        stack = subprocess.Popen(
            [sys.executable, "-m", "infra.local"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            while True:
                try:
                    call("GET", "/_local/health")
                    break
                except OSError:
                    time.sleep(0.05)
            startup_seconds = time.perf_counter() - started
            contacts = [f"+1500556{index:04d}" for index in range(messages)]

            retried: Counter[str] = Counter()

            def write_in(contact: str) -> float:
                form = inbound_form(contact, "hello", settings)
                began = time.perf_counter()
                # Twilio retries a webhook that failed (moto answers 500 when overloaded).
                for _ in range(5):
                    status, _ = post_signed(
                        f"{url}/webhooks/twilio/inbound", form, LOCAL_AUTH_TOKEN
                    )
                    if status == 200:
                        return time.perf_counter() - began
                    retried[str(status)] += 1
                raise AssertionError(f"inbound webhook kept failing: {status}")

            began = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                latencies = sorted(pool.map(write_in, contacts))
            inbound_seconds = time.perf_counter() - began

            def send(contact: str) -> str:
                status, answer = call("POST", "/v1/messages", {"to": contact, "body": "hi"})
                assert status == 202, answer
                return str(answer["id"])

            began = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                accepted = list(pool.map(send, contacts))
            deadline = time.monotonic() + 600
            while True:
                _, exchanges = call("GET", "/_local/twilio/exchanges")
                created = [
                    e["form"]["To"][0]
                    for e in exchanges["exchanges"]
                    if e["method"] == "POST" and e["status"] == 201
                ]
                if len(created) >= messages or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            send_seconds = time.perf_counter() - began
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(timeout=60)
    return {
        "startup_to_first_healthy_ms": round(startup_seconds * 1000, 1),
        "messages": messages,
        "client_concurrency": concurrency,
        "inbound_per_second": round(messages / inbound_seconds, 1),
        "inbound_retried_as_twilio_would": dict(retried),
        "inbound_latency_ms": {
            "p50": round(latencies[len(latencies) // 2] * 1000, 1),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        },
        "sends_per_second": round(len(created) / send_seconds, 1),
        "sends_accepted": len(set(accepted)),
        "sends_received_by_twilio": len(created),
        "sends_lost": messages - len(set(created)),
        "sends_doubled": len(created) - len(set(created)),
        "note": "local figures: moto and the stand-in bound them",
    }


def main() -> None:
    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cold_import": cold_imports(),
        "inbound_aws_calls": inbound_aws_calls(),
        "send_worker_batch": send_worker_batch(),
        "template_sync": template_sync(),
        "local_stack": local_stack(),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
