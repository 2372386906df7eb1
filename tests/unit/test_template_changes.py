"""What a template sync changes: the templates to write and the status or category changes to
announce, from the templates stored and Twilio's complete listing."""

from dataclasses import replace

import pytest

from whatsapp_gateway.domain.template_changes import SyncPlan, TemplateChange, plan_sync
from whatsapp_gateway.domain.templates import ApprovalStatus, Template
from whatsapp_gateway.domain.windows import Category

ACCOUNT_SID = "AC" + "1" * 32


def template(number: int = 1, **fields) -> Template:
    """An approved utility template with one text body, ``fields`` changed."""
    base = Template(
        sid=f"HX{number:032x}",
        account_sid=ACCOUNT_SID,
        name=f"template_{number}",
        language="en",
        status=ApprovalStatus.APPROVED,
        category=Category.UTILITY,
        types=frozenset({"twilio/text"}),
        placeholders=frozenset({"1", "2"}),
        variables={"1": "Ada", "2": "A-1001"},
    )
    return replace(base, **fields)


def stored(*templates: Template) -> dict[str, Template]:
    return {t.sid: t for t in templates}


# --- first sync and idempotence -------------------------------------------------------------


def test_first_sync_writes_every_listed_template_and_announces_nothing():
    # Given nothing stored yet, and Twilio listing three templates
    listed = [template(1), template(2, status=ApprovalStatus.PENDING), template(3, category=None)]

    # When the sync is planned
    plan = plan_sync({}, listed)

    # Then every template is written as listed, and no new template counts as a change
    assert plan.writes == tuple(listed)
    assert plan.changes == ()


def test_identical_listing_writes_nothing_and_announces_nothing():
    # Given the templates stored by a previous sync
    templates = [template(1), template(2, status=ApprovalStatus.REJECTED, rejection_reason="x")]

    # When Twilio lists them again, unchanged (equal values, not the same objects)
    plan = plan_sync(stored(*templates), [replace(t) for t in templates])

    # Then the second sync changes nothing
    assert plan == SyncPlan(writes=(), changes=())


def test_planning_twice_in_a_row_changes_nothing_the_second_time():
    # Given a stored set and a listing that differs from it in every way plan_sync knows
    before = stored(template(1), template(2), template(3, deleted=True))
    listed = [template(1, status=ApprovalStatus.PAUSED), template(3), template(4)]

    # When the first plan's writes are stored and the same listing is planned again
    first = plan_sync(before, listed)
    after = {**before, **stored(*first.writes)}
    second = plan_sync(after, listed)

    # Then the first plan did something, and the second nothing
    assert first.writes
    assert first.changes
    assert second == SyncPlan(writes=(), changes=())


def test_plan_sync_does_not_mutate_the_stored_templates():
    # Given a stored template that Twilio no longer lists
    previous = template(1)
    store = stored(previous)

    # When the sync is planned
    plan_sync(store, [])

    # Then the stored mapping and template are untouched (the deleted one is a copy)
    assert store == {previous.sid: previous}
    assert previous.deleted is False


# --- status and category changes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (ApprovalStatus.APPROVED, ApprovalStatus.PAUSED),
        (ApprovalStatus.PAUSED, ApprovalStatus.APPROVED),
        (ApprovalStatus.PENDING, ApprovalStatus.APPROVED),
        (ApprovalStatus.PENDING, ApprovalStatus.REJECTED),
        (ApprovalStatus.UNSUBMITTED, ApprovalStatus.RECEIVED),
        (ApprovalStatus.APPROVED, ApprovalStatus.DISABLED),
    ],
    ids=lambda status: status.value,
)
def test_status_change_is_written_and_announced_with_the_previous_template(before, after):
    # Given a stored template with one status
    previous = template(1, status=before)

    # When Twilio lists it with another status
    current = template(1, status=after)
    plan = plan_sync(stored(previous), [current])

    # Then it is written once and announced once, with what it was before
    assert plan.writes == (current,)
    assert plan.changes == (TemplateChange(template=current, previous=previous),)
    assert plan.changes[0].previous.status is before
    assert plan.changes[0].template.status is after


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (Category.UTILITY, Category.MARKETING),
        (Category.MARKETING, Category.AUTHENTICATION),
        (None, Category.UTILITY),
        (Category.MARKETING, None),
    ],
    ids=["utility-to-marketing", "marketing-to-authentication", "none-to-utility", "to-none"],
)
def test_category_change_is_written_and_announced(before, after):
    # Given a stored template of one category, which Meta then recategorizes
    previous = template(1, category=before)
    current = template(1, category=after)

    # When the sync is planned
    plan = plan_sync(stored(previous), [current])

    # Then the change is written and announced with the previous category
    assert plan.writes == (current,)
    assert plan.changes == (TemplateChange(template=current, previous=previous),)


@pytest.mark.parametrize(
    "change",
    [
        {"placeholders": frozenset({"1", "2", "3"})},
        {"types": frozenset({"twilio/text", "twilio/media"})},
        {"variables": {"1": "Grace", "2": "B-2002"}},
        {"variables": {}},
        {"rejection_reason": "Variables at the start or end"},
        {"name": "renamed_template"},
        {"language": "pt_BR"},
    ],
    ids=[
        "placeholders",
        "types",
        "variables",
        "variables-removed",
        "rejection-reason",
        "name",
        "language",
    ],
)
def test_content_change_is_written_but_not_announced(change):
    # Given a stored template whose status and category stay the same
    previous = template(1)

    # When Twilio lists it with other content
    current = template(1, **change)
    plan = plan_sync(stored(previous), [current])

    # Then it is written (the store must hold what Twilio says) but no status change is announced
    assert plan.writes == (current,)
    assert plan.changes == ()


def test_status_and_content_change_together_is_one_write_and_one_announcement():
    # Given a pending template whose body Meta approved after an edit
    previous = template(1, status=ApprovalStatus.PENDING)
    current = template(1, placeholders=frozenset({"1"}), variables={"1": "Ada"})
    current = replace(current, status=ApprovalStatus.APPROVED)

    # When the sync is planned
    plan = plan_sync(stored(previous), [current])

    # Then one write and one announcement
    assert plan.writes == (current,)
    assert plan.changes == (TemplateChange(template=current, previous=previous),)


# --- deletions ------------------------------------------------------------------------------


def test_template_missing_from_the_listing_is_written_as_deleted_and_announced():
    # Given two stored templates, of which Twilio now lists only one
    kept, gone = template(1), template(2, status=ApprovalStatus.PAUSED)

    # When the sync is planned
    plan = plan_sync(stored(kept, gone), [kept])

    # Then the missing one is written as deleted, all else as it was, and announced
    deleted = replace(gone, deleted=True)
    assert plan.writes == (deleted,)
    assert plan.changes == (TemplateChange(template=deleted, previous=gone),)
    assert plan.changes[0].template.status is ApprovalStatus.PAUSED
    assert plan.changes[0].previous.deleted is False


def test_deleted_template_missing_again_writes_nothing():
    # Given a template already marked deleted by an earlier sync
    gone = template(1, deleted=True)

    # When Twilio still does not list it
    plan = plan_sync(stored(gone, template(2)), [template(2)])

    # Then nothing is written or announced
    assert plan == SyncPlan(writes=(), changes=())


def test_deleted_template_that_reappears_is_written_undeleted_and_announced():
    # Given a template marked deleted by an earlier sync
    gone = template(1, deleted=True)

    # When Twilio lists it again, otherwise unchanged
    back = template(1)
    plan = plan_sync(stored(gone), [back])

    # Then it is written as not deleted, and its return is announced
    assert plan.writes == (back,)
    assert plan.writes[0].deleted is False
    assert plan.changes == (TemplateChange(template=back, previous=gone),)


def test_empty_listing_marks_every_stored_template_deleted():
    # Given three stored templates, one already deleted
    # (the caller guarantees that only a complete listing reaches plan_sync: an empty one means
    # the account really has no templates left)
    live = [template(1), template(2, status=ApprovalStatus.REJECTED)]
    already = template(3, deleted=True)

    # When Twilio lists none
    plan = plan_sync(stored(*live, already), [])

    # Then the live ones are written as deleted and announced; the deleted one is left alone
    expected = tuple(replace(t, deleted=True) for t in live)
    assert plan.writes == expected
    assert plan.changes == tuple(
        TemplateChange(template=gone, previous=was)
        for gone, was in zip(expected, live, strict=True)
    )


def test_empty_listing_against_an_empty_store_plans_nothing():
    assert plan_sync({}, []) == SyncPlan(writes=(), changes=())


# --- several changes at once ----------------------------------------------------------------


def test_several_changes_in_one_sync():
    # Given six stored templates
    unchanged = template(1)
    paused = template(2)
    recategorized = template(3, category=Category.UTILITY)
    edited = template(4)
    removed = template(5)
    returned = template(6, deleted=True)
    store = stored(unchanged, paused, recategorized, edited, removed, returned)

    # When Twilio lists: one unchanged, one paused, one recategorized, one edited, one back,
    # one new, and not the removed one
    now_paused = template(2, status=ApprovalStatus.PAUSED)
    now_marketing = template(3, category=Category.MARKETING)
    now_edited = template(4, placeholders=frozenset({"1"}))
    now_returned = template(6)
    new = template(7, status=ApprovalStatus.PENDING)
    listed = [unchanged, now_paused, now_marketing, now_edited, now_returned, new]
    plan = plan_sync(store, listed)

    # Then every template that changed is written exactly once, and the unchanged one not at all
    now_removed = replace(removed, deleted=True)
    assert sorted(plan.writes, key=lambda t: t.sid) == [
        now_paused,
        now_marketing,
        now_edited,
        now_removed,
        now_returned,
        new,
    ]
    assert len({t.sid for t in plan.writes}) == len(plan.writes)

    # And only the status, category and deletion changes are announced, each with its previous
    assert sorted(plan.changes, key=lambda c: c.template.sid) == [
        TemplateChange(template=now_paused, previous=paused),
        TemplateChange(template=now_marketing, previous=recategorized),
        TemplateChange(template=now_removed, previous=removed),
        TemplateChange(template=now_returned, previous=returned),
    ]
