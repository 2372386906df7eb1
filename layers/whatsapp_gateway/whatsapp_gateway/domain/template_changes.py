"""What a template sync changes: a pure comparison of the templates stored with the templates
Twilio lists for one account, so that a sync writes only what changed and running it twice
changes nothing the second time."""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from whatsapp_gateway.domain.templates import Template


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """A change of approval status or category (a deletion is one) worth telling the bus."""

    template: Template
    previous: Template


@dataclass(frozen=True, slots=True)
class SyncPlan:
    writes: tuple[Template, ...]
    changes: tuple[TemplateChange, ...]


def plan_sync(stored: Mapping[str, Template], listed: Sequence[Template]) -> SyncPlan:
    """The templates to write (new, changed, or gone from Twilio and so marked deleted) and
    the status or category changes among them. ``listed`` must be Twilio's complete listing: a
    template is marked deleted only because a whole listing went without it."""
    writes: list[Template] = []
    changes: list[TemplateChange] = []
    by_sid = {template.sid: template for template in listed}  # a SID listed twice counts once
    for template in by_sid.values():
        previous = stored.get(template.sid)
        if previous == template:
            continue
        writes.append(template)
        if previous is not None and _status_or_category_changed(previous, template):
            changes.append(TemplateChange(template=template, previous=previous))
    for sid, previous in stored.items():
        if sid not in by_sid and not previous.deleted:
            gone = replace(previous, deleted=True)
            writes.append(gone)
            changes.append(TemplateChange(template=gone, previous=previous))
    return SyncPlan(writes=tuple(writes), changes=tuple(changes))


def _status_or_category_changed(previous: Template, template: Template) -> bool:
    return (previous.status, previous.category, previous.deleted) != (
        template.status,
        template.category,
        template.deleted,
    )


def listing_digest(listed: Sequence[Template]) -> str:
    """A fingerprint of a complete listing: equal when nothing Twilio lists has changed, so
    that an unchanged account costs a sync no reads and no writes of its templates."""
    lines = sorted(
        repr(
            (
                t.sid,
                t.account_sid,
                t.name,
                t.language,
                t.status.value,
                t.category.value if t.category else None,
                sorted(t.types),
                sorted(t.placeholders),
                sorted(t.variables.items()),
                t.rejection_reason,
            )
        )
        for t in listed
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
