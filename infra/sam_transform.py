"""template.yaml as CloudFormation receives it: the SAM transform run locally (the SAM CLI's
own translator, in .venv-sam), so that tests read the IAM policies SAM generates from policy
templates, tracing and event sources. ``python -m infra.sam_transform`` prints it as JSON.

Run with .venv-sam's interpreter: the translator pins a pydantic other than the project's."""

import json
import os
import sys
from pathlib import Path
from typing import Any

from samcli.yamlhelper import yaml_parse  # type: ignore[import-not-found]
from samtranslator.translator.transform import transform  # type: ignore[import-not-found]

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _NoManagedPolicies:
    """The template names AWS managed policies by ARN only: nothing to look up in IAM."""

    def load(self) -> dict[str, str]:
        return {}


def transformed(path: Path = TEMPLATE) -> dict[str, Any]:
    sam: dict[str, Any] = yaml_parse(path.read_text())
    # As `sam package` leaves it: local code folders become (here, placeholder) S3 objects.
    for name, resource in sam["Resources"].items():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://packaged/{name}.zip"
    # SAM resolves AWS::Region from the session; any region will do to read the policies.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    cloudformation: dict[str, Any] = transform(sam, {}, _NoManagedPolicies())
    return cloudformation


if __name__ == "__main__":
    json.dump(transformed(), sys.stdout, indent=1, default=str)
