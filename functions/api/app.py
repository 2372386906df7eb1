"""The business's API (/v1/*, IAM-authorized when deployed)."""

from typing import Annotated
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.policy import PolicyCode, PolicyViolationError
from whatsapp_gateway.errors import ApiError
from whatsapp_gateway.http import register_error_handlers
from whatsapp_gateway.models.windows import ContactWindows
from whatsapp_gateway.observability import logger, metrics, tracer
from whatsapp_gateway.runtime import runtime

app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)


@app.get("/v1/contacts/<contact>/windows")
@tracer().capture_method
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
        raise PolicyViolationError(PolicyCode.UNKNOWN_SENDER, f"{sender_address} is not a sender")
    state = deps.store.contact_state(sender_address, contact_address)
    return ContactWindows.at(sender_address, contact_address, state, deps.clock.now())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer().capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
