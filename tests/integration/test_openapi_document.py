"""docs/openapi.json is the API's routes as they are: regenerated from the resolver, it must be
the committed file, and it must describe every /v1 route template.yaml deploys."""

import json
import re

from infra import sam_template
from infra.openapi import DOCUMENT, document


def test_the_committed_openapi_document_is_the_generated_one() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == document(), (
        "docs/openapi.json is stale: regenerate it with `make openapi` and commit it"
    )


def test_the_document_describes_every_route_the_template_deploys() -> None:
    def operation(method: str, path: str) -> str:
        # Parameter names are the handler's own; the routes match whatever the names.
        return f"{method.upper()} {re.sub(r'\{[^}]+\}', '{}', path)}"

    deployed = {
        operation(route["Method"], route["Path"])
        for _, route in sam_template.events("HttpApi")
        if route["Path"].startswith("/v1/")
    }
    documented = {
        operation(method, path)
        for path, methods in json.loads(DOCUMENT.read_text(encoding="utf-8"))["paths"].items()
        for method in methods
    }

    assert documented == deployed
