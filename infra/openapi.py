"""`make openapi`: writes the business API's OpenAPI document, docs/openapi.json, as Powertools
generates it from the API function's own routes and models (tests/e2e/test_fuzz_api.py runs
Schemathesis on it against the local stack; tests/integration/test_openapi_document.py fails
when it is stale)."""

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

from api.app import app

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
TITLE = "WhatsApp gateway API"
VERSION = "1"
DESCRIPTION = (
    "The business's API of the WhatsApp gateway (README.md). Every error answer is JSON "
    '`{"error": {"code": "...", "message": "..."}}`. Deployed, callers sign with SigV4 (IAM '
    "authorization); `make local` serves the same routes without authorization."
)
SIGV4 = "sigv4"
# Powertools documents a 422 for request validation on every route; the gateway answers those 400
# invalid_request (whatsapp_gateway/http.py), which the routes declare themselves.
POWERTOOLS_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"
POWERTOOLS_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def document() -> str:
    """The document, as committed (indented, one trailing newline)."""
    generated = app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        servers=[
            Server(
                url="https://{api_id}.execute-api.{region}.amazonaws.com",
                description="Deployed: the stack's ApiBaseUrl output",
                variables={
                    "api_id": {"default": "api-id", "description": "the HttpApi's id"},
                    "region": {"default": "us-east-1"},
                },
            ),
            Server(url="http://127.0.0.1:3000", description="make local"),
        ],
        # API Gateway's convention for IAM authorization in an OpenAPI document.
        security_schemes={
            SIGV4: APIKey(
                name="Authorization",
                in_=APIKeyIn.header,
                openapi_extensions={"x-amazon-apigateway-authtype": "awsSigv4"},
            )
        },
        security=[{SIGV4: []}],
    )
    return json.dumps(_without_powertools_validation_errors(json.loads(generated)), indent=2) + "\n"


def _without_powertools_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    for path in document["paths"].values():
        for operation in path.values():
            content = operation["responses"].get("422", {}).get("content", {})
            if content.get("application/json", {}).get("schema") == {
                "$ref": POWERTOOLS_VALIDATION_ERROR
            }:
                del operation["responses"]["422"]
    for name in POWERTOOLS_ERROR_SCHEMAS:
        del document["components"]["schemas"][name]
    return document


def main() -> None:
    DOCUMENT.write_text(document(), encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(Path.cwd(), walk_up=True)}")  # noqa: T201


if __name__ == "__main__":
    main()
