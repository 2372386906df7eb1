"""Starting the template sync function now (``POST /v1/templates/sync``), without waiting."""

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


class TemplateSyncTrigger:
    def __init__(self, client: "LambdaClient", function_name: str) -> None:
        self._client = client
        self._function_name = function_name

    def trigger(self) -> None:
        """An asynchronous invocation: Lambda queues it and retries it on failure."""
        self._client.invoke(
            FunctionName=self._function_name,
            InvocationType="Event",
            Payload=json.dumps({"source": "whatsapp.gateway", "trigger": "api"}).encode(),
        )
