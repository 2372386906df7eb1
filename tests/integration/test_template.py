"""template.yaml agrees with the code: each function's handler exists, the webhook routes are
public and the API routes are not, and the window table expires items by `expires_at`."""

import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.sam_template import (
    TEMPLATE,
    Resolver,
    events,
    load_template,
    parameter_defaults,
    queue_consumers,
    resources,
)

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


def test_the_webhooks_have_a_reserved_concurrency_a_parameter_sets_or_leaves_off():
    # A flood of webhooks (forged, or Twilio's retries) takes at most this many executions:
    # the API and the send worker keep the rest of the account's concurrency.
    template = load_template()
    public = {
        function
        for function, event in events("HttpApi")
        if event.get("Auth", {}).get("Authorizer") == "NONE"
    }
    parameter = template["Parameters"]["WebhookReservedConcurrency"]
    resolve = Resolver(parameter_defaults(), {}, {})

    assert public == {"InboundWebhookFunction", "StatusWebhookFunction"}
    for function in public:
        assert FUNCTIONS[function]["Properties"]["ReservedConcurrentExecutions"] == {
            "Fn::If": [
                "HasWebhookReservedConcurrency",
                {"Ref": "WebhookReservedConcurrency"},
                {"Ref": "AWS::NoValue"},
            ]
        }
    assert parameter["Type"] == "Number"
    assert parameter["Default"] > 0
    assert parameter["MinValue"] == 0
    assert resolve.condition("HasWebhookReservedConcurrency")
    unreserved = Resolver(parameter_defaults() | {"WebhookReservedConcurrency": "0"}, {}, {})
    assert not unreserved.condition("HasWebhookReservedConcurrency")
    for function in set(FUNCTIONS) - public:
        assert "ReservedConcurrentExecutions" not in FUNCTIONS[function]["Properties"]


# Tables whose loss a business cannot undo: the opt-outs and windows (who may be messaged, and
# what Meta charged for) and the messages. Not the templates (the sync rebuilds them from
# Twilio) nor the idempotency records (24 hours of answers; the message id derived from the
# caller's key guards against a second send).
DURABLE_TABLES = {"WindowsTable", "MessagesTable"}


@pytest.mark.parametrize("name", sorted(DURABLE_TABLES))
def test_a_table_of_state_that_cannot_be_rebuilt_survives_its_stack_and_can_be_restored(name):
    table = resources("AWS::DynamoDB::Table")[name]

    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    assert table["Properties"]["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}


def test_the_window_table_expires_items_by_expires_at():
    table = resources("AWS::DynamoDB::Table")["WindowsTable"]["Properties"]

    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_functions_and_layer_target_python_3_13_on_arm64():
    function_globals = load_template()["Globals"]["Function"]
    [layer] = resources("AWS::Serverless::LayerVersion").values()

    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    content = ROOT / layer["Properties"]["ContentUri"]
    assert (content / "requirements.txt").is_file()
    assert "--platform manylinux2014_aarch64" in (content / "Makefile").read_text()


@pytest.mark.parametrize(("function", "queue", "mapping"), queue_consumers())
def test_each_queue_consumer_reports_batch_item_failures_and_outlives_its_timeout(
    function, queue, mapping
):
    # A visibility timeout under 6x the function's timeout hands a batch still in flight to a
    # second worker: the Powertools and AWS guidance.
    queue_properties = resources("AWS::SQS::Queue")[queue]["Properties"]

    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert queue_properties["VisibilityTimeout"] >= 6 * FUNCTIONS[function]["Properties"]["Timeout"]
    # A dead-letter queue's consumer leaves what it cannot record where it is (14 days),
    # retried and alarmed on; every other queue has one of its own.
    assert "RedrivePolicy" in queue_properties or queue in _dead_letter_queues()


def _dead_letter_queues() -> set[str]:
    return {
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"].split(".")[0]
        for queue in resources("AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    }


def test_queues_are_consumed_through_mappings_written_out_not_sams_sqs_events():
    # SAM's SQS event attaches a managed policy allowing ReceiveMessage and DeleteMessage on
    # every queue of the account (test_template_permissions.py).
    assert not events("SQS")
    assert {(function, queue) for function, queue, _ in queue_consumers()} >= {
        ("SendWorkerFunction", "SendQueue")
    }


def test_the_send_queue_is_fifo_with_high_throughput_and_a_fifo_dead_letter_queue():
    queues = resources("AWS::SQS::Queue")
    send = queues["SendQueue"]["Properties"]
    dead_letters = queues["SendDeadLetterQueue"]["Properties"]

    assert send["FifoQueue"] is True
    assert send["DeduplicationScope"] == "messageGroup"
    assert send["FifoThroughputLimit"] == "perMessageGroupId"
    assert dead_letters["FifoQueue"] is True
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 60 * 60


def test_sqs_dead_letters_a_send_only_far_beyond_the_workers_own_attempts():
    # The worker gives a message up after MaxSendAttempts attempts it counts itself; SQS's
    # receive count also climbs while a message waits behind a failing one of its contact
    # (FIFO), so its limit is a safety net: nine messages each failing all their attempts
    # ahead of one still leave that one its own.
    attempts = load_template()["Parameters"]["MaxSendAttempts"]
    send = resources("AWS::SQS::Queue")["SendQueue"]["Properties"]

    assert send["RedrivePolicy"]["maxReceiveCount"] >= 10 * attempts["MaxValue"]
    assert attempts["Default"] <= attempts["MaxValue"]


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
    dead_letters = schedule["Properties"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"]
    queue = resources("AWS::SQS::Queue")[dead_letters.split(".")[0]]["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 60 * 60


# ---------------------------------------------------------------------- operations

ALARMS = resources("AWS::CloudWatch::Alarm")
NAMESPACE = "WhatsAppGateway"
PACKAGE_AND_FUNCTIONS = [ROOT / "layers" / "whatsapp_gateway", ROOT / "functions"]


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, dimensions) of everything an alarm watches."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        watched = [(properties["Namespace"], properties["MetricName"], properties["Dimensions"])]
    else:
        watched = [
            (
                m["MetricStat"]["Metric"]["Namespace"],
                m["MetricStat"]["Metric"]["MetricName"],
                m["MetricStat"]["Metric"]["Dimensions"],
            )
            for m in properties["Metrics"]
            if "MetricStat" in m
        ]
    return [(ns, name, {d["Name"]: d["Value"] for d in dims}) for ns, name, dims in watched]


def _emitted_metric_names() -> set[str]:
    """The metric names the code emits (add_metric and the event counters), read from it."""
    source = "\n".join(
        path.read_text() for root in PACKAGE_AND_FUNCTIONS for path in root.rglob("*.py")
    )
    names = set(re.findall(r'(?:name=|else )"(\w+)"', source)) | set(
        re.findall(r'_count\("(\w+)"', source)
    )
    outcomes = re.findall(r'^\s+[A-Z_]+ = "(\w+)"', source, re.MULTILINE)
    return names | {f"Sends_{outcome}" for outcome in outcomes}


def test_every_alarm_notifies_the_topic_and_watches_something_real():
    emitted = _emitted_metric_names()
    for name, alarm in ALARMS.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name
        for namespace, metric, _ in _alarm_metrics(alarm):
            if namespace == NAMESPACE:
                assert metric in emitted, (name, metric)


def test_the_alarms_cover_dead_letters_worker_errors_webhook_5xx_and_403s_sync_and_throttles():
    watched = [m for alarm in ALARMS.values() for m in _alarm_metrics(alarm)]
    # a queue waiting (or, for one a consumer empties, a message waiting too long)
    queues = {
        d["QueueName"]["Fn::GetAtt"]
        for _, n, d in watched
        if n in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage")
    }
    routes = {d["Resource"] for ns, n, d in watched if (ns, n) == ("AWS/ApiGateway", "5xx")}
    throttled = {d["FunctionName"]["Ref"] for _, n, d in watched if n == "Throttles"}
    errors = {
        d["FunctionName"]["Ref"] for ns, n, d in watched if (ns, n) == ("AWS/Lambda", "Errors")
    }
    ours = {n for ns, n, _ in watched if ns == NAMESPACE}

    assert queues == {f"{q}.QueueName" for q in resources("AWS::SQS::Queue") if "DeadLetter" in q}
    assert routes == {"/webhooks/twilio/inbound", "/webhooks/twilio/status"}
    assert throttled == set(FUNCTIONS)
    assert errors == {"SendWorkerFunction", "SendDeadLetterFunction"}
    assert ours == {
        "WebhookSignatureRejected",
        "TemplateSyncFailures",
        "SendErrors",
        "MessagesDeadLettered",
    }


def test_the_dashboard_is_valid_json_showing_what_operators_read():
    [dashboard] = resources("AWS::CloudWatch::Dashboard").values()
    body, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    # As CloudFormation substitutes it: ${X} and ${X.Attribute} by resource values.
    rendered = re.sub(r"\$\{([\w:.]+)\}", lambda m: variables.get(m[1], "x"), body)
    widgets = json.loads(rendered)["widgets"]
    text = json.dumps(widgets)
    emitted = _emitted_metric_names()

    titles = " / ".join(w["properties"]["title"] for w in widgets)
    for shown in (
        "received",
        "sent",
        "delivered",
        "read",
        "error code",
        "category",
        "p99",
        "Dead-letter",
    ):
        assert shown in titles, shown
    for metric in re.findall(r'MetricName=\\"(\w+)\\"', text) + [
        row[1]
        for w in widgets
        for row in w["properties"]["metrics"]
        if isinstance(row[0], str) and row[0] == NAMESPACE
    ]:
        assert metric in emitted, metric
    durations = [w for w in widgets if w["properties"].get("stat") == "p99"]
    assert len(durations[0]["properties"]["metrics"]) == len(FUNCTIONS)


def test_the_send_workers_concurrency_is_bounded_by_a_parameter():
    [mapping] = [m for function, _, m in queue_consumers() if function == "SendWorkerFunction"]
    parameter = mapping["ScalingConfig"]["MaximumConcurrency"]["Ref"]

    assert load_template()["Parameters"][parameter]["MinValue"] >= 2  # Lambda's minimum


def test_outputs_give_what_operators_paste_and_nothing_secret():
    outputs = load_template()["Outputs"]
    assert {
        "InboundWebhookUrl",
        "StatusCallbackUrl",
        "ApiBaseUrl",
        "EventBusName",
        "SendQueueUrl",
        "SendDeadLetterQueueUrl",
        "TemplateSyncDeadLetterQueueUrl",
    } <= set(outputs)
    assert "TwilioAccountsSecretArn" not in json.dumps(outputs)
    parameters = load_template()["Parameters"]
    assert "Default" not in parameters["TwilioAccountsSecretArn"]


def test_the_ci_workflow_runs_make_test_and_deploys_tags_with_oidc():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    test, deploy = workflow["jobs"]["test"], workflow["jobs"]["deploy"]

    assert [step["run"] for step in test["steps"] if "run" in step][-1] == "make test"
    assert deploy["needs"] == "test"
    assert deploy["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert deploy["permissions"]["id-token"] == "write"
    assert any("configure-aws-credentials" in step.get("uses", "") for step in deploy["steps"])
    assert deploy["steps"][-1]["run"].startswith("make deploy ENV=prod")
