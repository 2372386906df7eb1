"""Logger and Metrics shared by every function (service and namespace come from the
POWERTOOLS_* environment the template sets).

The webhook functions deliberately run without the X-Ray SDK: it costs about as much to import
as boto3 itself; Lambda's active tracing still records their invocations.
"""

import logging
from collections.abc import Sequence
from functools import cache

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from whatsapp_gateway.models.events import ConversationOpened, GatewayEvent, MessageStatusChanged

logger = Logger()
metrics = Metrics()

# The twilio SDK logs every request's parameters (numbers, bodies) at INFO.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


@cache
def tracer() -> Tracer:
    """The X-Ray tracer, for the functions that are not webhooks."""
    return Tracer()


def count_published(events: Sequence[GatewayEvent]) -> None:
    """Counts what the bus took, by the dimension the dashboard splits it by: messages by
    status, failures by error code, conversations by category. Counted from the events, they
    are counted where the change is announced, once, whichever function made it."""
    for event in events:
        if isinstance(event, MessageStatusChanged):
            _count("MessagesByStatus", status=event.status)
            if event.status in {"failed", "undelivered"}:
                _count("MessagesFailed", error_code=event.error_code or "none")
        elif isinstance(event, ConversationOpened):
            _count("ConversationsOpened", category=event.category)


def _count(name: str, **dimensions: str) -> None:
    # A metric set of its own, flushed now: the shared Metrics object's dimensions hold for all
    # its metrics. (single_metric would do, but prints even when metrics are disabled.)
    counter = EphemeralMetrics()
    for dimension, value in dimensions.items():
        counter.add_dimension(name=dimension, value=value)
    counter.add_metric(name=name, unit=MetricUnit.Count, value=1)
    counter.flush_metrics()
