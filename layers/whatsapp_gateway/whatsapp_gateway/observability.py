"""Logger and Metrics shared by every function (service and namespace come from the
POWERTOOLS_* environment the template sets).

The webhook functions deliberately run without the X-Ray SDK: it costs about as much to import
as boto3 itself; Lambda's active tracing still records their invocations.
"""

import logging
from functools import cache

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()

# The twilio SDK logs every request's parameters (numbers, bodies) at INFO.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


@cache
def tracer() -> Tracer:
    """The X-Ray tracer, for the functions that are not webhooks."""
    return Tracer()
