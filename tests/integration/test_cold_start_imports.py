"""The webhook handlers stay light at cold start: checked in a fresh interpreter, since this
test process has imported everything already."""

import json
import os
import subprocess
import sys

import pytest

HEAVY_MODULES = [
    "twilio.rest",  # the REST client: webhooks only check signatures
    "aws_xray_sdk",  # about as costly as boto3 to import
    "aws_lambda_powertools.event_handler",  # imports every resolver
]


@pytest.mark.parametrize("function", ["inbound_webhook", "status_webhook"])
def test_a_webhook_handler_imports_no_heavy_module(function):
    code = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code, f"{function}.app"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).stdout

    modules = json.loads(loaded)
    assert f"{function}.app" in modules
    for heavy in HEAVY_MODULES:
        assert not [m for m in modules if m == heavy or m.startswith(f"{heavy}.")], heavy
