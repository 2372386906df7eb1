"""What each function may touch and what it is told, as `sam deploy` creates it: the IAM
policies read from the SAM transform's output (policy templates expanded, SAM's own additions
included), and the environment variables the code reads, found from the code itself."""

import ast
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from infra.sam_template import TEMPLATE, load_template, resources, transformed_template
from whatsapp_gateway import config, runtime, webhooks

FUNCTIONS = resources("AWS::Serverless::Function")

# What each function may do, and on what: by logical id, a parameter (the secret, its KMS key),
# or "<table>/index/<name>" for an index. Exactly the calls its code makes (the adapters: the
# stores' DynamoDB calls, a transaction's Put and Update counting as PutItem and UpdateItem;
# Powertools' idempotency records; the SQS event source's ReceiveMessage, DeleteMessage and
# GetQueueAttributes); an action more or less fails the test.
SECRET = {"TwilioAccountsSecretArn": {"secretsmanager:GetSecretValue"}}
SECRET_KEY = {"TwilioAccountsSecretKmsKeyArn": {"kms:Decrypt"}}
EVENTS = {"EventBus": {"events:PutEvents"}}
PERMISSIONS: dict[str, dict[str, set[str]]] = {
    "InboundWebhookFunction": {
        # record_inbound's transaction and mark_events_published
        "MessagesTable": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
        "WindowsTable": {"dynamodb:UpdateItem"},
        **EVENTS,
        **SECRET,
    },
    "StatusWebhookFunction": {
        # apply_status, mark_published; message_id_of; open_conversation's transaction
        "MessagesTable": {"dynamodb:UpdateItem"},
        "MessagesTable/index/by_twilio_sid": {"dynamodb:Query"},
        "WindowsTable": {"dynamodb:PutItem"},
        **EVENTS,
        **SECRET,
    },
    "ApiFunction": {
        # contact_state; the template lookups and all_templates; message_view,
        # outbound_message, create_accepted and record_failed; Powertools' idempotency records
        # (deleted when the call fails)
        "WindowsTable": {"dynamodb:Query"},
        "TemplatesTable": {"dynamodb:GetItem", "dynamodb:Scan"},
        "TemplatesTable/index/by_name": {"dynamodb:Query"},
        "MessagesTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
        "IdempotencyTable": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        },
        "SendQueue": {"sqs:SendMessage"},
        "TemplateSyncFunction": {"lambda:InvokeFunction"},
        **SECRET,
    },
    "SendWorkerFunction": {
        # claim_attempt, record_sent, record_failed, release_attempt, mark_published;
        # reconciliation's message_id_of; contact_state; the template lookups
        "MessagesTable": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
        "MessagesTable/index/by_twilio_sid": {"dynamodb:Query"},
        "WindowsTable": {"dynamodb:Query"},
        "TemplatesTable": {"dynamodb:GetItem"},
        "TemplatesTable/index/by_name": {"dynamodb:Query"},
        # the event source's calls, and retry_later
        "SendQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        },
        **EVENTS,
        **SECRET,
    },
    "SendDeadLetterFunction": {
        # record_failed (a put for a message never recorded), mark_published
        "MessagesTable": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
        # the event source's calls
        "SendDeadLetterQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        },
        **EVENTS,
        # the sender and account of a message enqueued directly and never recorded
        **SECRET,
    },
    "TemplateSyncFunction": {
        # last_sync, mark_synced, save; templates_of
        "TemplatesTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem"},
        "TemplatesTable/index/by_account": {"dynamodb:Query"},
        **EVENTS,
        **SECRET,
    },
}
# The AWS managed policies SAM attaches itself: logs and X-Ray for every function (X-Ray has no
# resource-level permissions). Nothing else: SAM's SQS event would add the SQS poller's, which
# allows receiving and deleting on every queue of the account.
SAM_EXECUTION_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
# The condition under which the secret's customer-managed key may decrypt.
SECRET_KEY_GIVEN = "HasTwilioAccountsSecretKmsKey"
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


def _statements(
    role: dict[str, Any], conditions: dict[str, bool] | None = None
) -> Iterator[dict[str, Any]]:
    """The role's statements; a policy under ``Fn::If`` as ``conditions`` decide (both branches
    when not given)."""
    for policy in role["Properties"].get("Policies", []):
        if "Fn::If" in policy:
            condition, when_true, when_false = policy["Fn::If"]
            if conditions is None:
                branches = [when_true, when_false]
            else:
                branches = [when_true if conditions[condition] else when_false]
        else:
            branches = [policy]
        for branch in branches:
            if branch == {"Ref": "AWS::NoValue"}:
                continue
            statements = branch["PolicyDocument"]["Statement"]
            yield from statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_name(value: Any) -> str:
    """A statement's resource as PERMISSIONS names it: the logical id or parameter it refers to,
    then any path within it (``MessagesTable/index/by_twilio_sid``); a literal, as written."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return str(value["Ref"])
    if "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    if "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        text, variables = sub if isinstance(sub, list) else (sub, {})

        def named(match: re.Match[str]) -> str:
            if match[1] in variables:
                return _resource_name(variables[match[1]])
            return "" if match[1].startswith("AWS::") else match[1]

        arn = re.sub(r"\$\{([\w:]+)(?:\.\w+)?\}", named, text)
        # SAM's policy templates spell the ARN out: keep what follows the resource type.
        return re.sub(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:(?:table/|event-bus/)?", "", arn)
    return json.dumps(value)


def _granted(role: dict[str, Any], conditions: dict[str, bool]) -> dict[str, set[str]]:
    """What the role allows: actions by resource (PERMISSIONS' names)."""
    granted: dict[str, set[str]] = {}
    for statement in _statements(role, conditions):
        assert statement["Effect"] == "Allow"
        for resource in _as_list(statement["Resource"]):
            granted.setdefault(_resource_name(resource), set()).update(
                _as_list(statement["Action"])
            )
    return granted


def _role(cloudformation: dict[str, Any], function: str) -> dict[str, Any]:
    role_ref = cloudformation["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role: dict[str, Any] = cloudformation["Resources"][role_ref]
    return role


@pytest.mark.parametrize("kms_key", [False, True], ids=["aws-managed-key", "customer-managed-key"])
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_may_do_exactly_what_its_code_does(cloudformation, function, kms_key):
    expected = PERMISSIONS[function]
    if kms_key and SECRET.keys() <= expected.keys():
        expected = expected | SECRET_KEY

    granted = _granted(_role(cloudformation, function), {SECRET_KEY_GIVEN: kms_key})

    assert granted == expected


def test_the_secrets_key_decrypts_only_through_secrets_manager_and_only_the_secret(cloudformation):
    readers = [
        name for name, permissions in PERMISSIONS.items() if SECRET.keys() <= permissions.keys()
    ]
    assert readers
    for function in readers:
        [decrypt] = [
            statement
            for statement in _statements(_role(cloudformation, function), {SECRET_KEY_GIVEN: True})
            if "kms:Decrypt" in _as_list(statement["Action"])
        ]
        assert decrypt["Condition"] == {
            "StringEquals": {
                "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"},
                "kms:EncryptionContext:SecretARN": {"Ref": "TwilioAccountsSecretArn"},
            }
        }, function


def test_the_secrets_key_is_optional_and_must_be_a_key_arn():
    parameter = load_template()["Parameters"]["TwilioAccountsSecretKmsKeyArn"]
    pattern = re.compile(parameter["AllowedPattern"])
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

    assert parameter["Default"] == ""
    assert pattern.fullmatch("")
    assert pattern.fullmatch(key)
    assert pattern.fullmatch(key.replace("1234abcd", "mrk-1234abcd"))
    assert not pattern.fullmatch("arn:aws:kms:us-east-1:123456789012:alias/twilio")
    assert not pattern.fullmatch("*")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_only_sams_own_execution_policies_are_attached(cloudformation, function):
    managed = _role(cloudformation, function)["Properties"]["ManagedPolicyArns"]

    assert set(managed) == SAM_EXECUTION_POLICIES


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
                assert "*" not in action, (name, action)
            for resource in _as_list(statement["Resource"]):
                assert "*" not in json.dumps(resource), (name, resource)


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
