"""Domain events onto the gateway's EventBridge bus."""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from whatsapp_gateway.models.events import EVENT_SOURCE, GatewayEvent

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES_PER_CALL = 10


class EventPublishError(RuntimeError):
    """EventBridge refused some entries; the caller fails so that its trigger retries."""


class EventBus:
    def __init__(
        self,
        client: "EventBridgeClient",
        bus_name: str,
        on_published: Callable[[Sequence[GatewayEvent]], None] = lambda _: None,
    ) -> None:
        self._client = client
        self._bus_name = bus_name
        self._on_published = on_published

    def publish(self, events: Sequence[GatewayEvent]) -> None:
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": EVENT_SOURCE,
                "DetailType": event.detail_type,
                "Detail": event.model_dump_json(),
                "EventBusName": self._bus_name,
            }
            for event in events
        ]
        for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
            answer = self._client.put_events(Entries=entries[start : start + MAX_ENTRIES_PER_CALL])
            if answer.get("FailedEntryCount"):
                codes = {e.get("ErrorCode", "") for e in answer["Entries"]} - {""}
                raise EventPublishError(f"EventBridge refused events: {sorted(codes)}")
        self._on_published(events)
