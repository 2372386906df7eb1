"""The synced templates in DynamoDB: one item per Content SID, found by SID, by account and
name and language, or by account; and, per account, when the last sync completed."""

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from whatsapp_gateway.adapters.dynamodb_items import (
    expression_values,
    from_item,
    iso,
    to_item,
)
from whatsapp_gateway.domain.templates import ApprovalStatus, Template
from whatsapp_gateway.domain.windows import Category
from whatsapp_gateway.template_sync import SyncMark

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef

NAME_INDEX = "by_name"
ACCOUNT_INDEX = "by_account"
# The item recording an account's last complete sync shares the table, under its own key.
SYNC_MARKER = "sync#"
MAX_BATCH_WRITE = 25
PARALLEL_WRITES = 8


def template_lookup(account_sid: str, name: str, language: str) -> str:
    """The key of the by-name index: a send names a template by name and language."""
    return f"{account_sid}#{name}#{language}"


class TemplatesStore:
    def __init__(self, client: "DynamoDBClient", templates_table: str) -> None:
        self._client = client
        self._table = templates_table

    def template_by_sid(self, account_sid: str, sid: str) -> Template | None:
        """The account's template: a Content SID belongs to one account (one WABA)."""
        answer = self._client.get_item(TableName=self._table, Key={"sid": {"S": sid}})
        item = from_item(answer.get("Item") or {})
        return _template(item) if item.get("account_sid") == account_sid else None

    def template_by_name(self, account_sid: str, name: str, language: str) -> Template | None:
        templates = [
            _template(item)
            for item in self._query(
                NAME_INDEX, "lookup", template_lookup(account_sid, name, language)
            )
        ]
        # A template deleted at Twilio and created again under the same name: the live one.
        templates.sort(key=lambda template: template.deleted)
        return templates[0] if templates else None

    def templates_of(self, account_sid: str) -> dict[str, Template]:
        """Every template stored for the account, deleted ones included, by SID."""
        items = self._query(ACCOUNT_INDEX, "account_sid", account_sid)
        return {item["sid"]: _template(item) for item in items}

    def all_templates(self) -> list[tuple[Template, datetime | None]]:
        """Every template of every account, with when a sync last saw it (its account's last
        complete sync, for one not deleted)."""
        items: list[dict[str, Any]] = []
        scan: dict[str, Any] = {"TableName": self._table}
        while True:
            page = self._client.scan(**scan)
            items.extend(from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        synced = {
            item["synced_account"]: datetime.fromisoformat(item["synced_at"])
            for item in items
            if item["sid"].startswith(SYNC_MARKER)
        }
        return [
            (
                template := _template(item),
                datetime.fromisoformat(item["last_seen_at"])
                if template.deleted
                else synced.get(template.account_sid),
            )
            for item in items
            if not item["sid"].startswith(SYNC_MARKER)
        ]

    def last_sync(self, account_sid: str) -> SyncMark | None:
        answer = self._client.get_item(
            TableName=self._table, Key={"sid": {"S": SYNC_MARKER + account_sid}}
        )
        item = from_item(answer.get("Item") or {})
        if not item:
            return None
        return SyncMark(
            synced_at=datetime.fromisoformat(item["synced_at"]), digest=item.get("digest", "")
        )

    def save(
        self, templates: Iterable[Template], *, now: datetime, last_sync: datetime | None
    ) -> None:
        """Writes the templates, 25 to a request (one write each). A template listed now was
        seen now; one deleted was last seen by the sync before."""
        requests: list[WriteRequestTypeDef] = [
            {
                "PutRequest": {
                    "Item": to_item(
                        _item(template, seen_at=(last_sync or now) if template.deleted else now)
                    )
                }
            }
            for template in templates
        ]
        batches = [
            requests[start : start + MAX_BATCH_WRITE]
            for start in range(0, len(requests), MAX_BATCH_WRITE)
        ]
        if not batches:
            return
        # A first sync writes up to 6,000 templates an account: 240 requests, a few at a time.
        with ThreadPoolExecutor(max_workers=min(PARALLEL_WRITES, len(batches))) as pool:
            list(pool.map(self._write_batch, batches))

    def _write_batch(self, batch: list["WriteRequestTypeDef"]) -> None:
        pending: Mapping[str, Any] = {self._table: batch}
        while pending:
            answer = self._client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}

    def mark_synced(self, account_sid: str, mark: SyncMark) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "sid": SYNC_MARKER + account_sid,
                    "synced_account": account_sid,
                    "synced_at": iso(mark.synced_at),
                    "digest": mark.digest,
                }
            ),
        )

    def _query(self, index: str, key: str, value: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": f"{key} = :value",
            "ExpressionAttributeValues": expression_values(value=value),
        }
        while True:
            page = self._client.query(**query)
            items.extend(from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _item(template: Template, *, seen_at: datetime) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sid": template.sid,
        "account_sid": template.account_sid,
        "name": template.name,
        "language": template.language,
        "lookup": template_lookup(template.account_sid, template.name, template.language),
        "status": template.status.value,
        "types": sorted(template.types),
        "placeholders": sorted(template.placeholders),
        "variables": dict(template.variables),
        "deleted": template.deleted,
        # Written only when the template changes; a listed template's is its account's last sync.
        "last_seen_at": iso(seen_at),
    }
    if template.category is not None:
        item["category"] = template.category.value
    if template.rejection_reason:
        item["rejection_reason"] = template.rejection_reason
    return item


def _template(item: Mapping[str, Any]) -> Template:
    return Template(
        sid=item["sid"],
        account_sid=item.get("account_sid", ""),
        name=item["name"],
        language=item["language"],
        status=ApprovalStatus.from_twilio(item["status"]),
        category=Category.from_meta(item["category"]) if item.get("category") else None,
        types=frozenset(item.get("types", ())),
        placeholders=frozenset(item.get("placeholders", ())),
        variables=dict(item.get("variables", {})),
        rejection_reason=item.get("rejection_reason"),
        deleted=bool(item.get("deleted", False)),
    )
