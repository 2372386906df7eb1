"""Reads template.yaml: the one description of the deployment, from which the tests and the
local stack build their tables and bus, so they cannot drift from what `sam deploy` creates."""

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !Sub, ...) kept as dicts."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_TemplateLoader)  # noqa: S506
    return document


def resources(kind: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one CloudFormation type, by logical id."""
    return {
        name: resource
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == kind
    }


_TABLE_PROPERTIES = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
)


def create_tables(client: "DynamoDBClient") -> dict[str, str]:
    """Creates every table of the template, named by its logical id, with the template's keys,
    indexes and TTL. Returns logical id -> table name."""
    names = {}
    for logical_id, resource in resources("AWS::DynamoDB::Table").items():
        properties = resource["Properties"]
        arguments = {key: properties[key] for key in _TABLE_PROPERTIES if key in properties}
        client.create_table(TableName=logical_id, **arguments)
        if ttl := properties.get("TimeToLiveSpecification"):
            client.update_time_to_live(
                TableName=logical_id,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": ttl["Enabled"],
                },
            )
        names[logical_id] = logical_id
    return names


def create_event_buses(client: "EventBridgeClient") -> dict[str, str]:
    """Creates every event bus of the template, named by its logical id."""
    for logical_id in resources("AWS::Events::EventBus"):
        client.create_event_bus(Name=logical_id)
    return {logical_id: logical_id for logical_id in resources("AWS::Events::EventBus")}


_QUEUE_ATTRIBUTES = {
    "FifoQueue": "FifoQueue",
    "ContentBasedDeduplication": "ContentBasedDeduplication",
    "DeduplicationScope": "DeduplicationScope",
    "FifoThroughputLimit": "FifoThroughputLimit",
    "VisibilityTimeout": "VisibilityTimeout",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
}


def create_queues(client: "SQSClient", parameters: dict[str, str] | None = None) -> dict[str, str]:
    """Creates every queue of the template, named by its logical id (``.fifo`` for FIFO), with
    its attributes and redrive policy (dead-letter queues first). Returns logical id -> URL.
    ``parameters`` resolves ``!Ref`` to template parameters; their defaults otherwise."""
    declared = resources("AWS::SQS::Queue")
    values = {
        name: str(spec.get("Default", ""))
        for name, spec in load_template().get("Parameters", {}).items()
    } | (parameters or {})
    urls: dict[str, str] = {}
    attributes: dict[Any, str]
    arns: dict[str, str] = {}
    # A queue that others redrive to is created before them.
    ordered = sorted(declared, key=lambda name: "RedrivePolicy" in declared[name]["Properties"])
    for logical_id in ordered:
        properties = declared[logical_id]["Properties"]
        attributes = {
            attribute: str(_resolve(properties[key], values)).lower()
            if isinstance(properties[key], bool)
            else str(_resolve(properties[key], values))
            for key, attribute in _QUEUE_ATTRIBUTES.items()
            if key in properties
        }
        if redrive := properties.get("RedrivePolicy"):
            target = _get_att_resource(redrive["deadLetterTargetArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": arns[target],
                    "maxReceiveCount": int(_resolve(redrive["maxReceiveCount"], values)),
                }
            )
        name = f"{logical_id}.fifo" if properties.get("FifoQueue") else logical_id
        urls[logical_id] = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arns[logical_id] = client.get_queue_attributes(
            QueueUrl=urls[logical_id], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
    return urls


def _get_att_resource(value: dict[str, Any]) -> str:
    """The logical id in ``!GetAtt Name.Attribute`` (short form) or ``[Name, Attribute]``."""
    target = value["Fn::GetAtt"]
    return str(target.split(".")[0] if isinstance(target, str) else target[0])


def _resolve(value: Any, parameters: dict[str, str]) -> Any:
    """A property's value, with ``!Ref`` to a parameter replaced by the parameter's value."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters[value["Ref"]]
    return value


# ---------------------------------------------------------------------- functions and events


def functions() -> dict[str, dict[str, Any]]:
    """The template's functions by logical id, each with its Globals merged in (environment
    variables added, the function's own winning)."""
    function_globals = load_template().get("Globals", {}).get("Function", {})
    merged: dict[str, dict[str, Any]] = {}
    for name, resource in resources("AWS::Serverless::Function").items():
        properties = {**function_globals, **resource["Properties"]}
        variables = {
            **function_globals.get("Environment", {}).get("Variables", {}),
            **resource["Properties"].get("Environment", {}).get("Variables", {}),
        }
        properties["Environment"] = {"Variables": variables}
        merged[name] = properties
    return merged


def events(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(function logical id, event properties) for every SAM event of one type (HttpApi,
    ScheduleV2, ...)."""
    return [
        (name, event.get("Properties", {}))
        for name, properties in functions().items()
        for event in properties.get("Events", {}).values()
        if event["Type"] == kind
    ]


def queue_consumers() -> list[tuple[str, str, dict[str, Any]]]:
    """(function logical id, queue logical id, mapping properties) for every SQS event source
    mapping of the template (written out, not SAM's SQS events: see template.yaml)."""
    return [
        (
            resource["Properties"]["FunctionName"]["Ref"],
            _get_att_resource(resource["Properties"]["EventSourceArn"]),
            resource["Properties"],
        )
        for resource in resources("AWS::Lambda::EventSourceMapping").values()
    ]


def parameter_defaults() -> dict[str, str]:
    return {
        name: str(spec.get("Default", ""))
        for name, spec in load_template().get("Parameters", {}).items()
    }


class Resolver:
    """Evaluates the intrinsic functions of the template's properties against local values:
    ``names`` gives each resource's ``Ref`` (a table's name, a queue's URL) and ``attributes``
    its ``GetAtt`` values."""

    def __init__(
        self,
        parameters: dict[str, str],
        names: dict[str, str],
        attributes: dict[tuple[str, str], str],
    ) -> None:
        self._values = {**parameters, **names, "AWS::Region": "us-east-1"}
        self._values |= {"AWS::AccountId": "000000000000", "AWS::StackName": "local"}
        self._attributes = attributes
        self._conditions = load_template().get("Conditions", {})

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            return value
        [(function, argument)] = value.items()
        if function == "Ref":
            return self._values[argument]
        if function == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._substitute(m.group(1)), argument)
        if function == "Fn::GetAtt":
            resource, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self._attributes[(resource, attribute)]
        if function == "Fn::If":
            condition, when_true, when_false = argument
            return self(when_true if self.condition(condition) else when_false)
        raise ValueError(f"{function} is not supported locally")

    def condition(self, name: str) -> bool:
        return bool(self._evaluate(self._conditions[name]))

    def _evaluate(self, node: Any) -> Any:
        [(function, argument)] = node.items()
        if function == "Fn::Equals":
            return self(argument[0]) == self(argument[1])
        if function == "Fn::Not":
            return not self._evaluate(argument[0])
        if function == "Fn::And":
            return all(self._evaluate(item) for item in argument)
        if function == "Fn::Or":
            return any(self._evaluate(item) for item in argument)
        if function == "Condition":
            return self.condition(argument)
        raise ValueError(f"{function} is not supported locally")

    def _substitute(self, name: str) -> str:
        if "." in name:
            resource, attribute = name.split(".", 1)
            return self._attributes[(resource, attribute)]
        return str(self._values[name])


def transformed_template() -> dict[str, Any]:
    """template.yaml after the SAM transform, as CloudFormation gets it (infra/sam_transform.py,
    run by the SAM CLI's environment, made by `make` when absent)."""
    interpreter = TEMPLATE.parent / ".venv-sam" / "bin" / "python"
    if not interpreter.exists():
        subprocess.run(["make", ".venv-sam/.installed"], cwd=TEMPLATE.parent, check=True)  # noqa: S607
    printed = subprocess.run(  # noqa: S603  (our own interpreter and module)
        [str(interpreter), "-m", "infra.sam_transform"],
        cwd=TEMPLATE.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    cloudformation: dict[str, Any] = json.loads(printed)
    return cloudformation
