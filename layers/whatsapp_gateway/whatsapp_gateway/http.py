"""The API functions' one place where exceptions become HTTP answers, and where a JSON body is
bounded before it is parsed."""

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import ValidationError

from whatsapp_gateway.domain.addresses import InvalidAddressError
from whatsapp_gateway.domain.policy import PolicyViolationError
from whatsapp_gateway.errors import ApiError, describe, error_body

# A request of the API is a few KB; 64 KiB keeps an accepted message well inside an SQS message
# (256 KiB) and a DynamoDB item (400 KB), whatever its characters.
MAX_BODY_BYTES = 64 * 1024
# No request nests deeper than 2 levels; json.loads recurses once per level.
MAX_JSON_DEPTH = 10

MULTIPART_FORM = "multipart/form-data"

_ESCAPE = re.compile(r"\\.", re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def refuse_unless_json(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The 415 answer to a request whose body is not JSON, before the resolver parses it (it
    would parse forms and multipart bodies, and fail on some with a 500); None otherwise."""
    headers: Mapping[str, str] = event.get("headers") or {}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if not event.get("body") and content_type != MULTIPART_FORM:
        return None
    if content_type in {"", content_types.APPLICATION_JSON}:
        return None
    return {
        "statusCode": 415,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": error_body("unsupported_content_type", "body: send application/json"),
    }


def read_json_body(text: str) -> Any:
    """The resolver's JSON parser: refuses a body too large (413) or nested too deep (400)
    before parsing it, in time linear in its size."""
    if len(text) > MAX_BODY_BYTES or len(text.encode()) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", "body: over 64 KiB")
    if _depth(text) > MAX_JSON_DEPTH:
        raise ApiError(400, "invalid_request", f"body: nested over {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError, or an integer over Python's 4,300 digits
        raise ApiError(400, "invalid_request", "body: not valid JSON") from error


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings: escapes removed, every other piece
    between quotes is outside a string."""
    outside_strings = "".join(_ESCAPE.sub("", text).split('"')[::2])
    brackets = _NOT_A_BRACKET.sub("", outside_strings)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def error_response(status: int, code: str, message: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(code, message),
    )


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(ApiError)
    def _api_error(error: ApiError) -> Response[str]:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(PolicyViolationError)
    def _policy(error: PolicyViolationError) -> Response[str]:
        return error_response(422, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response[str]:
        # A wrong type, an unknown field: named as the caller spelled it.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in error.errors()
        )
        return error_response(400, "invalid_request", problems)

    @app.exception_handler(RequestUnsupportedContentType)
    def _not_json(_: RequestUnsupportedContentType) -> Response[str]:
        return error_response(415, "unsupported_content_type", "body: send application/json")

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(_: UnicodeDecodeError) -> Response[str]:
        # A base64-encoded body (API Gateway's choice for bytes) that is not UTF-8 text.
        return error_response(400, "invalid_request", "body: not UTF-8 text")

    @app.exception_handler(ValidationError)
    def _invalid(error: ValidationError) -> Response[str]:
        return error_response(400, "invalid_request", describe(error))

    @app.exception_handler(InvalidAddressError)
    def _invalid_address(error: InvalidAddressError) -> Response[str]:
        return error_response(400, "invalid_address", str(error))
