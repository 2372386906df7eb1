"""The template sync: on its schedule, and when POST /v1/templates/sync asks for it now."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_gateway.observability import logger, metrics, tracer
from whatsapp_gateway.runtime import runtime
from whatsapp_gateway.template_sync import sync_templates


class TemplateSyncFailedError(RuntimeError):
    """Some account's sync failed: the schedule's retry policy runs the whole sync again."""


@logger.inject_lambda_context(clear_state=True)
@tracer().capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = runtime()
    failed = []
    synced = {}
    for account in deps.accounts().accounts:
        logger.append_keys(account_sid=account.account_sid)
        try:
            result = sync_templates(
                account,
                twilio=deps.twilio,
                store=deps.templates,
                events=deps.events,
                now=deps.clock.now(),
            )
        except Exception as error:
            # Twilio failing (TwilioCallError) changes nothing, nor does anything else that
            # fails before the writes; the other accounts still sync either way.
            logger.exception("template sync failed", extra={"reason": type(error).__name__})
            metrics.add_metric(name="TemplateSyncFailures", unit=MetricUnit.Count, value=1)
            failed.append(account.account_sid)
            continue
        logger.info("templates synced", extra={"listed": result.listed, "written": result.written})
        metrics.add_metric(name="TemplatesWritten", unit=MetricUnit.Count, value=result.written)
        metrics.add_metric(
            name="TemplateStatusChanges", unit=MetricUnit.Count, value=result.changes
        )
        synced[account.account_sid] = result.listed
    if failed:
        raise TemplateSyncFailedError(f"template sync failed for {len(failed)} account(s)")
    return {"synced": synced}
