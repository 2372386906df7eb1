"""Reads template.yaml: the one description of the deployment, from which the tests and the
local stack build their tables and bus, so they cannot drift from what `sam deploy` creates."""

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient

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
