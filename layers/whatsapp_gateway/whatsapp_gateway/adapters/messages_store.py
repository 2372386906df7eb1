"""Outbound messages in DynamoDB.

A message's ``status_history`` is a map, one entry per status (each kept once, with its time,
Twilio's error and whether its event was published): an entry is written with the change it
records, its event published after, and the entry marked; a crash in between leaves an
unpublished entry that the next delivery of the same work publishes.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from whatsapp_gateway.adapters.dynamodb_items import (
    expression_values,
    from_epoch,
    from_item,
    iso,
    to_item,
    to_value,
)
from whatsapp_gateway.domain.addresses import Address
from whatsapp_gateway.domain.statuses import MessageStatus, statuses_before
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.models.messages import (
    MessageView,
    SendMessageRequest,
    StatusEntry,
    TemplateView,
)
from whatsapp_gateway.outbound import OutboundRecord
from whatsapp_gateway.status_changes import Ignored

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import UpdateItemOutputTypeDef

TWILIO_SID_INDEX = "by_twilio_sid"


class MessagesStore:
    def __init__(self, client: "DynamoDBClient", messages_table: str) -> None:
        self._client = client
        self._messages = messages_table

    # ------------------------------------------------------------------ reads

    def message_view(self, message_id: str) -> MessageView | None:
        """A message as ``GET /v1/messages/{id}`` shows it, inbound or outbound."""
        answer = self._client.get_item(
            TableName=self._messages, Key=_key(message_id), ConsistentRead=True
        )
        return _view(from_item(answer["Item"])) if "Item" in answer else None

    def message_id_of(self, twilio_sid: str) -> str | None:
        answer = self._client.query(
            TableName=self._messages,
            IndexName=TWILIO_SID_INDEX,
            KeyConditionExpression="twilio_sid = :sid",
            ExpressionAttributeValues=expression_values(sid=twilio_sid),
        )
        items = answer.get("Items", [])
        return str(from_item(items[0])["message_id"]) if items else None

    def outbound_message(self, message_id: str) -> OutboundRecord | None:
        """An outbound message the API recorded, as it stands now."""
        answer = self._client.get_item(
            TableName=self._messages, Key=_key(message_id), ConsistentRead=True
        )
        return _record(from_item(answer["Item"])) if "Item" in answer else None

    # ------------------------------------------------------------------ writes

    def create_accepted(self, record: OutboundRecord) -> None:
        """The message the API accepted; its id is new, so the write cannot collide."""
        self._client.put_item(
            TableName=self._messages,
            Item=to_item(
                {
                    **_fields(record),
                    "status": MessageStatus.ACCEPTED.value,
                    "status_history": {
                        MessageStatus.ACCEPTED.value: _entry(record.created_at, published=True)
                    },
                    "attempts": 0,
                }
            ),
            ConditionExpression="attribute_not_exists(message_id)",
        )

    def claim_attempt(self, record: OutboundRecord, now: datetime) -> OutboundRecord | None:
        """Records an attempt to send (creating the message when it was enqueued directly) and
        returns the message as it was before: None when new."""
        answer = self._count_attempt(record, now, reaching_twilio=True, returning="ALL_OLD")
        old = answer.get("Attributes")
        return _record(from_item(old)) if old else None

    def count_attempt(self, record: OutboundRecord, now: datetime) -> int:
        """Counts an attempt that failed before it could be claimed (creating the message when
        it was enqueued directly), so that one failing there every time is given up on too;
        the attempts so far, this one included."""
        answer = self._count_attempt(record, now, reaching_twilio=False, returning="UPDATED_NEW")
        return int(from_item(answer["Attributes"])["attempts"])

    def _count_attempt(
        self,
        record: OutboundRecord,
        now: datetime,
        *,
        reaching_twilio: bool,
        returning: Literal["ALL_OLD", "UPDATED_NEW"],
    ) -> "UpdateItemOutputTypeDef":
        """One more attempt at the message; ``reaching_twilio``: this one may call Twilio, so a
        later one reconciles from its start."""
        fields = _fields(record)
        del fields["message_id"]  # the key
        started = ", attempt_started_at = if_not_exists(attempt_started_at, :now)"
        return self._client.update_item(
            TableName=self._messages,
            Key=_key(record.message_id),
            UpdateExpression="SET "
            + ", ".join(f"#{name} = if_not_exists(#{name}, :{name})" for name in fields)
            + ", #status = if_not_exists(#status, :accepted)"
            ", status_history = if_not_exists(status_history, :history)"
            + (started if reaching_twilio else "")
            + ", attempts = if_not_exists(attempts, :zero) + :one",
            ExpressionAttributeNames={f"#{name}": name for name in fields} | {"#status": "status"},
            ExpressionAttributeValues={
                **{f":{name}": to_value(value) for name, value in fields.items()},
                **expression_values(
                    accepted=MessageStatus.ACCEPTED.value,
                    zero=0,
                    one=1,
                    **({"now": int(now.timestamp())} if reaching_twilio else {}),
                ),
                ":history": to_value({MessageStatus.ACCEPTED.value: _entry(now, published=True)}),
            },
            ReturnValues=returning,
        )

    def release_attempt(self, message_id: str) -> None:
        """Twilio answered that it did not take the message: the next try needs no
        reconciliation."""
        self._client.update_item(
            TableName=self._messages,
            Key=_key(message_id),
            UpdateExpression="REMOVE attempt_started_at",
        )

    def record_sent(
        self,
        message_id: str,
        twilio_sid: str,
        *,
        category: Category,
        template_sid: str | None,
        now: datetime,
    ) -> None:
        """Twilio took the message: its SID, and ``queued`` unless a status callback already
        moved the message further."""
        details = {"twilio_sid": twilio_sid, "category": category.value}
        if template_sid is not None:
            details["template_sid"] = template_sid
        set_details = ", ".join(f"{name} = :{name}" for name in details)
        may_queue, queue_values = _may_move_to(MessageStatus.QUEUED)
        try:
            self._client.update_item(
                TableName=self._messages,
                Key=_key(message_id),
                UpdateExpression=f"SET {set_details}, #status = :queued, "
                "status_history.queued = if_not_exists(status_history.queued, :entry)",
                ConditionExpression=may_queue,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    **expression_values(**details, queued=MessageStatus.QUEUED.value),
                    **queue_values,
                    ":entry": to_value(_entry(now, published=True)),
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            self._client.update_item(
                TableName=self._messages,
                Key=_key(message_id),
                UpdateExpression=f"SET {set_details}",
                ExpressionAttributeValues=expression_values(**details),
            )

    def record_failed(
        self,
        message_id: str,
        code: str,
        message: str,
        now: datetime,
        *,
        draft: OutboundRecord | None = None,
    ) -> OutboundRecord | None:
        """Ends a message Twilio never took (or refused): failed, with the reason. Returns the
        message with its unpublished change: this one, or the failure recorded before (with
        this reason or another) whose event has not gone out yet. None when there is nothing
        to announce: it was sent or ended meanwhile, or it was never recorded and no ``draft``
        says what it is (an invalid message enqueued directly). A message never recorded is
        recorded failed, from ``draft`` when there is one."""
        entry = _entry(now, published=False, error_code=code, error_message=message)
        may_fail, fail_values = _may_move_to(MessageStatus.FAILED)
        try:
            answer = self._client.update_item(
                TableName=self._messages,
                Key=_key(message_id),
                UpdateExpression="SET #status = :failed, error_code = :code, "
                "error_message = :message, status_history.failed = :entry",
                ConditionExpression="attribute_exists(status_history) "
                f"AND attribute_not_exists(twilio_sid) AND {may_fail}",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    **expression_values(
                        failed=MessageStatus.FAILED.value, code=code, message=message
                    ),
                    **fail_values,
                    ":entry": to_value(entry),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as error:
            old: Mapping[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
            if old:
                stored = from_item(old)
                failed = stored.get("status_history", {}).get(MessageStatus.FAILED.value, {})
                if "request" in stored and not failed.get("published", True):
                    return _record(stored)  # failed before, its event not out yet
                return None  # sent or ended meanwhile: the earlier outcome stands
            # Never recorded: enqueued directly, and refused or dead-lettered before that.
            item = {
                **(_fields(draft) if draft else {"message_id": message_id}),
                "direction": "outbound",
                "created_at": iso(now),
                "status": MessageStatus.FAILED.value,
                "error_code": code,
                "error_message": message,
                "status_history": {MessageStatus.FAILED.value: entry},
            }
            self._client.put_item(
                TableName=self._messages,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(message_id)",
            )
            return _record(item) if draft else None
        return _record(from_item(answer["Attributes"]))

    def apply_status(
        self,
        message_id: str,
        status: MessageStatus,
        *,
        account_sid: str,
        twilio_sid: str,
        at: datetime,
        error_code: str | None,
        error_message: str | None,
    ) -> OutboundRecord | Ignored:
        """Moves the message to ``status`` if that is forward (an unpublished history entry
        records the change); otherwise only keeps the status in the history, once. Changes
        nothing for an unknown message, or one the callback is not of (_OF_ITS_MESSAGE): both
        are checked in the same conditional write, so a callback still costs the same calls."""
        entry = _entry(at, published=False, error_code=error_code, error_message=error_message)
        names = {"#status": "status", "#entry": status.value}
        may_move, move_values = _may_move_to(status)
        its_values = expression_values(account=account_sid, sid=twilio_sid)
        error_fields = ""
        error_values: dict[str, Any] = {}
        if error_code is not None or error_message is not None:
            error_fields = ", error_code = :code, error_message = :message"
            error_values = expression_values(code=error_code, message=error_message)
        try:
            answer = self._client.update_item(
                TableName=self._messages,
                Key=_key(message_id),
                UpdateExpression="SET #status = :status, status_history.#entry = :entry, "
                "twilio_sid = if_not_exists(twilio_sid, :sid)" + error_fields,
                ConditionExpression=f"direction = :outbound AND {_OF_ITS_MESSAGE} AND {may_move}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    **expression_values(status=status.value, outbound="outbound"),
                    **its_values,
                    **error_values,
                    **move_values,
                    ":entry": to_value(entry),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as error:
            old: Mapping[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
            stored = from_item(old)
            if stored.get("direction") != "outbound" or "request" not in stored:
                return Ignored.UNKNOWN_MESSAGE
            if not _is_its_message(stored, account_sid=account_sid, twilio_sid=twilio_sid):
                return Ignored.NOT_ITS_MESSAGE
            if status.value in stored.get("status_history", {}) and stored.get("twilio_sid"):
                # A duplicate (or the `queued` the worker recorded): nothing left to write.
                return _record(stored)
            # Out of order: the status stays, the history keeps it once.
            try:
                answer = self._client.update_item(
                    TableName=self._messages,
                    Key=_key(message_id),
                    UpdateExpression="SET status_history.#entry = "
                    "if_not_exists(status_history.#entry, :entry), "
                    "twilio_sid = if_not_exists(twilio_sid, :sid)",
                    ConditionExpression=_OF_ITS_MESSAGE,
                    ExpressionAttributeNames={"#entry": status.value},
                    ExpressionAttributeValues={
                        # Kept as a fact, but the message never took this status: no event.
                        ":entry": to_value({**entry, "published": True, "ignored": True}),
                        **its_values,
                    },
                    ReturnValues="ALL_NEW",
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                return Ignored.NOT_ITS_MESSAGE  # the worker recorded another SID meanwhile
        return _record(from_item(answer["Attributes"]))

    def mark_published(self, message_id: str, statuses: list[MessageStatus]) -> None:
        self._client.update_item(
            TableName=self._messages,
            Key=_key(message_id),
            UpdateExpression="SET "
            + ", ".join(f"status_history.#s{i}.published = :true" for i in range(len(statuses))),
            ExpressionAttributeNames={f"#s{i}": s.value for i, s in enumerate(statuses)},
            ExpressionAttributeValues=expression_values(true=True),
        )


def _key(message_id: str) -> dict[str, Any]:
    return {"message_id": {"S": message_id}}


# The message a status callback may act on: of the account that signed the callback, sent under
# the SID it reports, or, until the worker records that SID, one whose send has started (Twilio
# may report before the worker's write lands). A message never handed to Twilio has no status
# Twilio could report.
_OF_ITS_MESSAGE = (
    "account_sid = :account AND (twilio_sid = :sid"
    " OR (attribute_not_exists(twilio_sid) AND attribute_exists(attempt_started_at)))"
)


def _is_its_message(stored: Mapping[str, Any], *, account_sid: str, twilio_sid: str) -> bool:
    """_OF_ITS_MESSAGE, read from the stored message."""
    if stored.get("account_sid") != account_sid:
        return False
    if "twilio_sid" in stored:
        return bool(stored["twilio_sid"] == twilio_sid)
    return "attempt_started_at" in stored


def _may_move_to(status: MessageStatus) -> tuple[str, dict[str, Any]]:
    """The condition (and its values) under which a message may move to ``status``: the
    domain's status order, enforced atomically."""
    names = {f":from{i}": before for i, before in enumerate(sorted(statuses_before(status)))}
    condition = f"#status IN ({', '.join(names)})"
    return condition, {name: {"S": before.value} for name, before in names.items()}


def _entry(
    at: datetime,
    *,
    published: bool,
    error_code: str | None = None,
    error_message: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": iso(at), "published": published}
    if error_code is not None:
        entry["error_code"] = error_code
    if error_message is not None:
        entry["error_message"] = error_message
    return entry


def _fields(record: OutboundRecord) -> dict[str, Any]:
    """What a message is, as opposed to where it stands."""
    fields: dict[str, Any] = {
        "message_id": record.message_id,
        "direction": "outbound",
        "account_sid": record.account_sid,
        "sender": record.sender.whatsapp,
        "contact": record.contact.whatsapp,
        "request": record.request.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        "created_at": iso(record.created_at),
    }
    if record.category is not None:
        fields["category"] = record.category.value
    if record.template_sid is not None:
        fields["template_sid"] = record.template_sid
    return fields


def _history(item: Mapping[str, Any], *, unpublished_only: bool = False) -> tuple[StatusEntry, ...]:
    """The status history, oldest first (or only its entries whose events are unpublished)."""
    entries = [
        StatusEntry(
            status=MessageStatus(status),
            at=entry["at"],
            error_code=entry.get("error_code"),
            error_message=entry.get("error_message"),
            applied=not entry.get("ignored", False),
        )
        for status, entry in item.get("status_history", {}).items()
        if not (unpublished_only and entry["published"])
    ]
    return tuple(sorted(entries, key=_in_order))


def _record(item: Mapping[str, Any]) -> OutboundRecord:
    return OutboundRecord(
        message_id=item["message_id"],
        account_sid=item.get("account_sid", ""),
        sender=Address.parse(item["sender"]),
        contact=Address.parse(item["contact"]),
        request=SendMessageRequest.model_validate(item["request"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        status=MessageStatus(item["status"]),
        category=Category(item["category"]) if "category" in item else None,
        template_sid=item.get("template_sid"),
        twilio_sid=item.get("twilio_sid"),
        attempt_started_at=from_epoch(item["attempt_started_at"])
        if "attempt_started_at" in item
        else None,
        attempts=int(item.get("attempts", 0)),
        error_code=item.get("error_code"),
        history=_history(item),
        unpublished=_history(item, unpublished_only=True),
    )


def _view(item: Mapping[str, Any]) -> MessageView:
    if item["direction"] == "inbound":
        inbound = item.get("inbound", {})
        received_at = datetime.fromisoformat(item["received_at"])
        return MessageView(
            id=item["message_id"],
            direction="inbound",
            to=item["sender"],
            from_=item["contact"],
            status=item["status"],
            status_history=[],
            twilio_sid=item["message_id"],
            error_code=None,
            error_message=None,
            category=None,
            template=None,
            body=inbound.get("body"),
            media_urls=[media["url"] for media in inbound.get("media", [])],
            created_at=received_at,
        )
    request = item.get("request", {})
    template = request.get("template")
    return MessageView(
        id=item["message_id"],
        direction="outbound",
        to=item.get("contact", request.get("to", "")),
        from_=item.get("sender", request.get("from", "")),
        status=item["status"],
        status_history=list(_history(item)),
        twilio_sid=item.get("twilio_sid"),
        error_code=item.get("error_code"),
        error_message=item.get("error_message"),
        category=item.get("category"),
        template=TemplateView(
            sid=item.get("template_sid") or template.get("content_sid") or "",
            name=template.get("name"),
            language=template.get("language"),
        )
        if template
        else None,
        body=request.get("body"),
        media_urls=list(request.get("media_urls", [])),
        created_at=datetime.fromisoformat(item["created_at"]),
    )


def _in_order(entry: StatusEntry) -> tuple[datetime, int]:
    return entry.at, list(MessageStatus).index(entry.status)
