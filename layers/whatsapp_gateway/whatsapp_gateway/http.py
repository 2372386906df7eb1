"""The API functions' one place where exceptions become HTTP answers."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import ValidationError

from whatsapp_gateway.domain.addresses import InvalidAddressError
from whatsapp_gateway.domain.policy import PolicyViolationError
from whatsapp_gateway.errors import ApiError, describe, error_body


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
        # Malformed JSON, a wrong type, an unknown field: named as the caller spelled it.
        problems = "; ".join(
            "body: not valid JSON"
            if e["type"] == "json_invalid"
            else f"{'.'.join(str(part) for part in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in error.errors()
        )
        return error_response(400, "invalid_request", problems)

    @app.exception_handler(ValidationError)
    def _invalid(error: ValidationError) -> Response[str]:
        return error_response(400, "invalid_request", describe(error))

    @app.exception_handler(InvalidAddressError)
    def _invalid_address(error: InvalidAddressError) -> Response[str]:
        return error_response(400, "invalid_address", str(error))
