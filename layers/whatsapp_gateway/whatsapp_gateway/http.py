"""HTTP answers shared by every API function: the contract's JSON error shape and the one place
where exceptions become status codes."""

import json

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from pydantic import ValidationError

from whatsapp_gateway.domain.addresses import InvalidAddressError
from whatsapp_gateway.domain.policy import PolicyViolationError


class ApiError(Exception):
    """A request the gateway refuses, with its HTTP status and stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": code, "message": message}}),
    )


def describe(error: ValidationError) -> str:
    """A validation error as one line naming each field (as the caller spelled it)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}"
        for e in error.errors(include_url=False)
    )


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(ApiError)
    def _api_error(error: ApiError) -> Response[str]:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(PolicyViolationError)
    def _policy(error: PolicyViolationError) -> Response[str]:
        return error_response(422, error.code, error.message)

    @app.exception_handler(ValidationError)
    def _invalid(error: ValidationError) -> Response[str]:
        return error_response(400, "invalid_request", describe(error))

    @app.exception_handler(InvalidAddressError)
    def _invalid_address(error: InvalidAddressError) -> Response[str]:
        return error_response(400, "invalid_address", str(error))
