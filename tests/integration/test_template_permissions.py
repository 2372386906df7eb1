"""What each function may touch and what it is told, as `sam deploy` creates it: the IAM
policies read from the SAM transform's output (policy templates expanded, SAM's own additions
included), and the environment variables the code reads, found from the code itself."""

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from infra.sam_template import TEMPLATE, load_template, resources, transformed_template
from whatsapp_gateway import config, runtime, webhooks

FUNCTIONS = resources("AWS::Serverless::Function")

# What each function needs, by logical id (the secret is a parameter: its ARN). A policy for
# anything else, or a need without a policy, fails the test.
NEEDS = {
    "InboundWebhookFunction": {
        "MessagesTable",
        "WindowsTable",
        "EventBus",
        "TwilioAccountsSecretArn",
    },
    "StatusWebhookFunction": {
        "MessagesTable",
        "WindowsTable",
        "EventBus",
        "TwilioAccountsSecretArn",
    },
    "ApiFunction": {
        "WindowsTable",
        "TemplatesTable",
        "MessagesTable",
        "IdempotencyTable",
        "SendQueue",
        "TemplateSyncFunction",
        "TwilioAccountsSecretArn",
    },
    "SendWorkerFunction": {
        "MessagesTable",
        "WindowsTable",
        "TemplatesTable",
        "SendQueue",
        "EventBus",
        "TwilioAccountsSecretArn",
    },
    "TemplateSyncFunction": {"TemplatesTable", "EventBus", "TwilioAccountsSecretArn"},
}
# The AWS managed policies SAM attaches itself: logs and X-Ray for every function (X-Ray has no
# resource-level permissions), and the SQS poller's for a queue's consumer. Nothing else.
SAM_EXECUTION_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
SQS_CONSUMER_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
# The only wildcards in a statement: SendMessage and SendMessageBatch on the one queue, and the
# indexes of the one table (a table's GSIs are queried by their own ARNs).
ALLOWED_WILDCARD_ACTIONS = {"sqs:SendMessage*"}
TABLE_INDEXES = ":table/${tableName}/index/*"
# Variables the code reads that the template leaves out on purpose: local and test settings
# (one account without a secret, the fakes' seam), and defaults that are the deployed values.
NOT_DEPLOYED = {
    "TWILIO_ACCOUNT_SID": "local only: deployed, the accounts come from the secret",
    "TWILIO_AUTH_TOKEN": "local only, and a secret: never in an environment variable",
    "TWILIO_API_URL": "the fakes' seam: deployed, Twilio's own hosts",
    "TWILIO_SECRET_MAX_AGE_SECONDS": "300 s, Powertools' cache of the secret",
    "TWILIO_HTTP_TIMEOUT_SECONDS": "5 s where a function calls Twilio and sets none",
}


@pytest.fixture(scope="module")
def cloudformation() -> dict[str, Any]:
    return transformed_template()


def _statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role["Properties"].get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        yield from statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _referenced(value: Any) -> set[str]:
    """The logical ids and parameters a policy's resource names through Ref or GetAtt."""
    if isinstance(value, list):
        return set().union(*map(_referenced, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    if "Ref" in value:
        return {value["Ref"]}
    if "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return {target[0] if isinstance(target, list) else target.split(".")[0]}
    return set().union(*map(_referenced, value.values())) if value else set()


def _role(cloudformation: dict[str, Any], function: str) -> dict[str, Any]:
    role_ref = cloudformation["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role: dict[str, Any] = cloudformation["Resources"][role_ref]
    return role


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_may_touch_exactly_what_it_needs(cloudformation, function):
    granted = set().union(
        *(_referenced(s["Resource"]) for s in _statements(_role(cloudformation, function)))
    )

    assert granted == NEEDS[function]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_only_sams_own_execution_policies_are_attached(cloudformation, function):
    consumes_a_queue = any(
        event["Type"] == "SQS" for event in FUNCTIONS[function]["Properties"]["Events"].values()
    )
    expected = SAM_EXECUTION_POLICIES | ({SQS_CONSUMER_POLICY} if consumes_a_queue else set())

    assert set(_role(cloudformation, function)["Properties"]["ManagedPolicyArns"]) == expected


def test_no_statement_of_any_role_allows_everything(cloudformation):
    roles = {
        name: resource
        for name, resource in cloudformation["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert set(roles) >= {f"{name}Role" for name in FUNCTIONS}
    for name, role in roles.items():
        for statement in _statements(role):
            assert statement["Effect"] == "Allow", name
            for action in _as_list(statement["Action"]):
                assert "*" not in action or action in ALLOWED_WILDCARD_ACTIONS, (name, action)
            for resource in _as_list(statement["Resource"]):
                assert resource != "*", name
                text = resource if isinstance(resource, str) else str(resource)
                assert "*" not in text.replace(TABLE_INDEXES, ""), (name, resource)


# ---------------------------------------------------------------------- environment


def _attributes_of(tree: ast.AST, owner: str) -> set[str]:
    """Attributes read on ``owner`` (a name, or ``runtime()``) in a module."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if (isinstance(value, ast.Name) and value.id == owner) or (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "runtime"
        ):
            found.add(node.attr)
    return found


def _runtime_members() -> dict[str, tuple[set[str], set[str]]]:
    """Each member of Runtime: the members it uses (``self.x``) and the settings it builds."""
    tree = ast.parse(inspect.getsource(runtime.Runtime))
    [cls] = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    members: dict[str, tuple[set[str], set[str]]] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            members[node.name] = (
                _attributes_of(node, "self"),
                {name for name in names if name.endswith("Settings")},
            )
    return members


def _settings_read(function: str) -> set[type[BaseModel]]:
    """The settings classes a function's handler builds: the Runtime members its app.py (and
    the webhook helper it hands ``deps`` to) use, followed through Runtime."""
    code = TEMPLATE.parent / FUNCTIONS[function]["Properties"]["CodeUri"] / "app.py"
    app = ast.parse(code.read_text())
    used = _attributes_of(app, "deps")
    if "answer_twilio" in code.read_text():
        used |= _attributes_of(ast.parse(Path(inspect.getfile(webhooks)).read_text()), "deps")
    members = _runtime_members()
    pending, seen, settings = list(used & members.keys()), set(), set()
    while pending:
        member = pending.pop()
        if member in seen:
            continue
        seen.add(member)
        uses, builds = members[member]
        settings |= builds
        pending.extend(uses & members.keys())
    return {getattr(config, name) for name in settings}


def _environment(function: str) -> set[str]:
    globals_ = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    own = FUNCTIONS[function]["Properties"].get("Environment", {}).get("Variables", {})
    return set(globals_) | set(own)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_variable_a_function_reads_is_set_by_the_template(function):
    settings = _settings_read(function)
    assert settings, "the analysis found nothing: it is not reading the code"
    fields = [field for model in settings for field in model.model_fields.values()]
    read = {str(field.alias) for field in fields}
    required = {str(field.alias) for field in fields if field.is_required()}

    assert required <= _environment(function)
    assert read - _environment(function) <= NOT_DEPLOYED.keys()


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_the_template_sets_nothing_a_function_does_not_read(function):
    read = {
        str(field.alias)
        for model in _settings_read(function)
        for field in model.model_fields.values()
    }
    powertools = {name for name in _environment(function) if name.startswith("POWERTOOLS_")}

    assert _environment(function) - powertools <= read
