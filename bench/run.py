"""Runs every benchmark and writes bench/results.json (also printed)."""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
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
    for function in ("inbound_webhook",):
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


def inbound_aws_calls(messages: int = 50) -> dict[str, Any]:
    """AWS calls made per inbound message (moto in-process), counted by botocore's events:
    new messages, Twilio's retry of a delivered one, and an opt-out keyword."""
    import boto3  # noqa: PLC0415  (after the environment is set for moto)
    from moto import mock_aws  # noqa: PLC0415

    from infra.sam_template import create_event_buses, create_tables  # noqa: PLC0415
    from tests.integration.conftest import (  # noqa: PLC0415
        LambdaContext,
        inbound_form,
        webhook_event,
    )

    os.environ.update(
        {
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
            "EVENT_BUS_NAME": "EventBus",
        }
    )
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: object) -> None:
        # event_name: before-call.<service>.<Operation>
        service, operation = event_name.split(".", 2)[1:]
        calls[f"{service}.{operation}"] += 1

    with mock_aws():
        boto3.setup_default_session()
        create_tables(boto3.client("dynamodb"))
        create_event_buses(boto3.client("events"))
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call", count)

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

    def summary(counter: Counter[str], divisor: int = 1) -> dict[str, Any]:
        return {
            "total": round(sum(counter.values()) / divisor, 2),
            "by_operation": {name: round(n / divisor, 2) for name, n in sorted(counter.items())},
        }

    return {
        "new_message": summary(per_message, messages),
        "twilio_retry_of_a_delivered_message": summary(retry),
        "opt_out_keyword": summary(opt_out),
        "messages": messages,
        "target_max_calls_per_message": 3,
    }


def main() -> None:
    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cold_import": cold_imports(),
        "inbound_aws_calls": inbound_aws_calls(),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
