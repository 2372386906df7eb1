"""template.yaml agrees with the code: each function's handler exists, the webhook routes are
public and the API routes are not, and the window table expires items by `expires_at`."""

import importlib
import inspect
from pathlib import Path

import pytest

from infra.sam_template import TEMPLATE, load_template, resources

FUNCTIONS = resources("AWS::Serverless::Function")
ROOT = TEMPLATE.parent


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_handler_is_an_importable_callable_taking_event_and_context(name):
    properties = FUNCTIONS[name]["Properties"]
    code = Path(properties["CodeUri"])
    module_name, function_name = properties["Handler"].rsplit(".", 1)

    assert (ROOT / code / f"{module_name}.py").is_file()
    module = importlib.import_module(f"{code.name}.{module_name}")
    handler = getattr(module, function_name)
    assert callable(handler)
    assert list(inspect.signature(handler).parameters)[:2] == ["event", "context"]


def test_webhook_routes_are_public_and_api_routes_need_iam():
    routes = {
        event["Properties"]["Path"]: event["Properties"].get("Auth", {}).get("Authorizer")
        for function in FUNCTIONS.values()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    [api] = resources("AWS::Serverless::HttpApi").values()

    assert api["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    for path, authorizer in routes.items():
        expected = "NONE" if path.startswith("/webhooks/") else None
        assert authorizer == expected, path


def test_the_window_table_expires_items_by_expires_at():
    table = resources("AWS::DynamoDB::Table")["WindowsTable"]["Properties"]

    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_functions_and_layer_target_python_3_13_on_arm64():
    function_globals = load_template()["Globals"]["Function"]
    [layer] = resources("AWS::Serverless::LayerVersion").values()

    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").is_file()


@pytest.mark.parametrize(
    "name",
    sorted(
        name
        for name, function in FUNCTIONS.items()
        if any(e["Type"] == "SQS" for e in function["Properties"].get("Events", {}).values())
    ),
)
def test_each_queue_consumer_reports_batch_item_failures_and_outlives_its_timeout(name):
    # A visibility timeout under 6x the function's timeout hands a batch still in flight to a
    # second worker: the Powertools and AWS guidance.
    properties = FUNCTIONS[name]["Properties"]
    queues = resources("AWS::SQS::Queue")
    for event in properties["Events"].values():
        if event["Type"] != "SQS":
            continue
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        queue = queues[event["Properties"]["Queue"]["Fn::GetAtt"].split(".")[0]]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * properties["Timeout"]
        assert "RedrivePolicy" in queue


def test_the_send_queue_is_fifo_with_high_throughput_and_a_fifo_dead_letter_queue():
    queues = resources("AWS::SQS::Queue")
    send = queues["SendQueue"]["Properties"]
    dead_letters = queues["SendDeadLetterQueue"]["Properties"]

    assert send["FifoQueue"] is True
    assert send["DeduplicationScope"] == "messageGroup"
    assert send["FifoThroughputLimit"] == "perMessageGroupId"
    assert dead_letters["FifoQueue"] is True
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 60 * 60


def test_the_twilio_timeout_is_shorter_than_the_send_workers():
    worker = FUNCTIONS["SendWorkerFunction"]["Properties"]
    twilio_timeout = float(worker["Environment"]["Variables"]["TWILIO_HTTP_TIMEOUT_SECONDS"])

    assert 0 < twilio_timeout < worker["Timeout"]


def test_the_template_sync_runs_on_a_schedule_with_retries_and_a_dead_letter_queue():
    sync = FUNCTIONS["TemplateSyncFunction"]["Properties"]
    [schedule] = [e for e in sync["Events"].values() if e["Type"] == "ScheduleV2"]
    minutes = load_template()["Parameters"]["TemplateSyncMinutes"]

    assert minutes["Default"] == 15
    assert schedule["Properties"]["ScheduleExpression"] == {
        "Fn::Sub": "rate(${TemplateSyncMinutes} minutes)"
    }
    assert schedule["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert schedule["Properties"]["DeadLetterConfig"]["Type"] == "SQS"
