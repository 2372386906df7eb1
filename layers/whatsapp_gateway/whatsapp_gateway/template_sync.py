"""Keeping the templates as Twilio and Meta see them: every account's templates listed from
Twilio's Content API, compared with what is stored, and only the differences written.

A listing that fails on any page changes nothing (a template is never marked deleted because a
page failed). Changes of status or category go on the bus before they are written: a crash in
between repeats them at the next sync rather than losing them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from whatsapp_gateway.domain.template_changes import TemplateChange, listing_digest, plan_sync
from whatsapp_gateway.domain.templates import Template
from whatsapp_gateway.models.accounts import TwilioAccount
from whatsapp_gateway.models.content import ContentAndApprovals
from whatsapp_gateway.models.events import GatewayEvent, TemplateStatusChanged

DELETED = "deleted"


class ContentSource(Protocol):
    def templates(self, account: TwilioAccount) -> list[ContentAndApprovals]: ...


class TemplateStore(Protocol):
    def templates_of(self, account_sid: str) -> dict[str, Template]: ...

    def last_sync(self, account_sid: str) -> "SyncMark | None": ...

    def save(
        self, templates: Sequence[Template], *, now: datetime, last_sync: datetime | None
    ) -> None: ...

    def mark_synced(self, account_sid: str, mark: "SyncMark") -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[GatewayEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncMark:
    """An account's last complete sync: when, and the fingerprint of what Twilio listed."""

    synced_at: datetime
    digest: str


@dataclass(frozen=True, slots=True)
class SyncResult:
    listed: int
    written: int
    changes: int


def sync_templates(
    account: TwilioAccount,
    *,
    twilio: ContentSource,
    store: TemplateStore,
    events: EventPublisher,
    now: datetime,
) -> SyncResult:
    """Syncs one account's templates; raises TwilioCallError (nothing changed) when Twilio's
    listing fails."""
    listed = [content.template() for content in twilio.templates(account)]
    digest = listing_digest(listed)
    last = store.last_sync(account.account_sid)
    if last is not None and last.digest == digest:
        store.mark_synced(account.account_sid, SyncMark(synced_at=now, digest=digest))
        return SyncResult(listed=len(listed), written=0, changes=0)
    plan = plan_sync(store.templates_of(account.account_sid), listed)
    events.publish([_status_changed(change, now) for change in plan.changes])
    store.save(plan.writes, now=now, last_sync=last.synced_at if last else None)
    # Last: a crash before it leaves the old fingerprint, and the next sync compares in full.
    store.mark_synced(account.account_sid, SyncMark(synced_at=now, digest=digest))
    return SyncResult(listed=len(listed), written=len(plan.writes), changes=len(plan.changes))


def _status_changed(change: TemplateChange, now: datetime) -> TemplateStatusChanged:
    template, previous = change.template, change.previous
    return TemplateStatusChanged(
        sid=template.sid,
        account_sid=template.account_sid,
        name=template.name,
        language=template.language,
        status=DELETED if template.deleted else template.status.value,
        previous_status=DELETED if previous.deleted else previous.status.value,
        category=template.category.value if template.category else None,
        previous_category=previous.category.value if previous.category else None,
        rejection_reason=template.rejection_reason,
        at=now,
    )
