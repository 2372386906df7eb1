"""Errors the gateway answers with a 4xx, in the contract's JSON shape
``{"error": {"code": "...", "message": "..."}}``. No web framework here: the webhooks use it
without loading Powertools' event handler."""

import json

from pydantic import BaseModel, ValidationError


class ApiError(Exception):
    """A request the gateway refuses, with its HTTP status and stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorAnswer(BaseModel):
    """The body of every JSON error answer (the API's OpenAPI document declares it)."""

    error: ErrorDetail


def error_body(code: str, message: str) -> str:
    # json, not pydantic's serializer: a message may quote input with a lone surrogate.
    return json.dumps(ErrorAnswer(error=ErrorDetail(code=code, message=message)).model_dump())


def describe(error: ValidationError) -> str:
    """A validation error as one line naming each field (as the caller spelled it)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}"
        for e in error.errors(include_url=False)
    )
