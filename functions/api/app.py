"""The business's API (/v1/*, IAM-authorized when deployed)."""

from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.policy import PolicyCode, PolicyViolationError
from whatsapp_gateway.errors import ApiError, ErrorAnswer
from whatsapp_gateway.http import (
    error_response,
    read_json_body,
    refuse_unless_json,
    register_error_handlers,
)
from whatsapp_gateway.models.messages import Accepted, MessageView, SendMessageRequest
from whatsapp_gateway.models.templates import SyncStarted, TemplateList, TemplateSummary
from whatsapp_gateway.models.windows import ContactWindows
from whatsapp_gateway.observability import logger, metrics, tracer
from whatsapp_gateway.outbound import (
    IdempotencyKeyReusedError,
    accept_message,
    keyed_message_id,
    new_message_id,
)
from whatsapp_gateway.runtime import runtime

app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=read_json_body)
register_error_handlers(app)


def _answers(
    status: int, model: type[BaseModel], errors: dict[int, str]
) -> dict[int, OpenAPIResponse]:
    """A route's answers for the OpenAPI document (`make openapi`): its success, and each error
    status in the contract's shape with the codes it carries."""
    answers: dict[int, OpenAPIResponse] = {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {content_types.APPLICATION_JSON: {"model": model}},
        }
    }
    for error, codes in errors.items():
        answers[error] = {
            "description": f"{HTTPStatus(error).phrase}: {codes}",
            "content": {content_types.APPLICATION_JSON: {"model": ErrorAnswer}},
        }
    return answers


INVALID_REQUEST = "invalid_request, invalid_address, sender_required"
POLICY_CODES = ", ".join(PolicyCode)


@app.exception_handler(IdempotencyValidationError)
def _key_reused(_: IdempotencyValidationError) -> Response[str]:
    error = IdempotencyKeyReusedError()
    return error_response(error.status, error.code, error.message)


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _key_in_use(_: IdempotencyAlreadyInProgressError) -> Response[str]:
    return error_response(
        409, "idempotency_key_in_progress", "a request with this Idempotency-Key is in progress"
    )


IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# Same key and body: the first answer, for a day. Same key, another body: 409.
idempotency = IdempotencyConfig(
    event_key_jmespath="key",
    payload_validation_jmespath="request",
    expires_after_seconds=24 * 60 * 60,
)


@app.post(
    "/v1/messages",
    summary="Send a WhatsApp message: the WhatsApp rules are checked now, then it is queued",
    responses=_answers(
        202,
        Accepted,
        {
            400: INVALID_REQUEST,
            409: "idempotency_key_reused, idempotency_key_in_progress",
            413: "payload_too_large",
            415: "unsupported_content_type",
            422: POLICY_CODES,
        },
    ),
)
def send_message(request: SendMessageRequest) -> Response[str]:
    """Checks the WhatsApp rules now, records the message as accepted and queues it."""
    key = app.current_event.headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is None:
        accepted = _accept(request, new_message_id(), keyed=False)
    else:
        accept_once = idempotent_function(
            _accept_payload,
            data_keyword_argument="payload",
            persistence_store=runtime().idempotency,
            config=idempotency,
        )
        payload = {
            "key": f"{_caller()}:{key}",
            "request": request.model_dump(mode="json", by_alias=True),
        }
        accepted = Accepted.model_validate(accept_once(payload=payload))
    metrics.add_metric(name="MessagesAccepted", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=accepted.model_dump_json(),
    )


def _accept_payload(payload: dict[str, Any]) -> dict[str, Any]:
    request = SendMessageRequest.model_validate(payload["request"])
    return _accept(request, keyed_message_id(payload["key"]), keyed=True).model_dump(mode="json")


def _accept(request: SendMessageRequest, message_id: str, *, keyed: bool) -> Accepted:
    deps = runtime()
    return accept_message(
        request,
        message_id=message_id,
        keyed=keyed,
        accounts=deps.accounts(),
        state=deps.store,
        templates=deps.templates,
        store=deps.messages,
        queue=deps.queue,
        now=deps.clock.now(),
    )


def _caller() -> str:
    """Idempotency keys are the caller's own: two callers may pick the same key."""
    authorizer = app.current_event.request_context.authorizer
    iam = authorizer.iam if authorizer else None
    return (iam.user_arn if iam else None) or "anonymous"


@app.get(
    "/v1/messages/<message_id>",
    summary="A message by id, with its status history",
    responses=_answers(200, MessageView, {404: "message_not_found"}),
)
def get_message(message_id: str) -> MessageView:
    view = runtime().messages.message_view(unquote(message_id))
    if view is None:
        raise ApiError(404, "message_not_found", f"no message {message_id}")
    return view


@app.get(
    "/v1/templates",
    summary="The synced templates",
    responses=_answers(200, TemplateList, {400: "invalid_request"}),
)
def list_templates(
    status: str | None = None,
    category: str | None = None,
    language: str | None = None,
    name: str | None = None,
) -> TemplateList:
    """The synced templates, filtered by status (or "deleted"), category, language, name."""
    filters = {"status": status, "category": category, "language": language, "name": name}
    wanted = {field: value.lower() for field, value in filters.items() if value is not None}
    summaries = [
        TemplateSummary.of(template, last_seen_at)
        for template, last_seen_at in runtime().templates.all_templates()
    ]
    summaries = [
        summary
        for summary in summaries
        if all(str(getattr(summary, field)).lower() == value for field, value in wanted.items())
    ]
    return TemplateList(templates=sorted(summaries, key=lambda t: (t.name, t.language, t.sid)))


@app.post(
    "/v1/templates/sync",
    summary="Start a template sync now",
    responses=_answers(202, SyncStarted, {}),
)
def sync_templates_now() -> Response[str]:
    """Starts a template sync now (the schedule runs one every few minutes anyway)."""
    runtime().template_sync.trigger()
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=SyncStarted().model_dump_json(),
    )


@app.get(
    "/v1/contacts/<contact>/windows",
    summary="The WhatsApp windows of a contact with a sender, as they stand now",
    responses=_answers(200, ContactWindows, {400: INVALID_REQUEST, 422: PolicyCode.UNKNOWN_SENDER}),
)
def contact_windows(
    contact: str, sender: Annotated[str | None, Query(alias="from")] = None
) -> ContactWindows:
    """The windows of a contact with the default sender (or ``?from=``), as they stand now."""
    deps = runtime()
    accounts = deps.accounts()
    contact_address = Address.from_id(unquote(contact))
    sender_address = accounts.sender_or_default(Address.from_id(sender) if sender else None)
    if sender_address is None:
        raise ApiError(400, "sender_required", "several senders are configured: pass ?from=")
    if accounts.account_of(sender_address) is None:
        raise PolicyViolationError(
            PolicyCode.UNKNOWN_SENDER, f"{sender_address.masked} is not a sender"
        )
    state = deps.store.contact_state(sender_address, contact_address)
    return ContactWindows.at(sender_address, contact_address, state, deps.clock.now())


# The invocation is traced, the routes are not one by one: Tracer logs every exception a traced
# method raises at ERROR, and a rule's refusal (422) is an answer, not an error.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer().capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    idempotency.register_lambda_context(context)
    return refuse_unless_json(event) or app.resolve(event, context)
