"""Status order: duplicated and out-of-order callbacks never move a message backwards."""

import pytest

from whatsapp_gateway.domain.statuses import (
    MessageStatus,
    moves_forward,
    reaches_contact,
    statuses_before,
)

S = MessageStatus
PROGRESS = [S.ACCEPTED, S.QUEUED, S.SENDING, S.SENT, S.DELIVERED, S.READ]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [(a, b) for i, a in enumerate(PROGRESS) for b in PROGRESS[i + 1 :]],
)
def test_progress_moves_forward_and_never_back(earlier, later):
    assert moves_forward(earlier, later)
    assert not moves_forward(later, earlier)


@pytest.mark.parametrize("status", list(MessageStatus))
def test_a_duplicate_status_changes_nothing(status):
    assert not moves_forward(status, status)


@pytest.mark.parametrize("ending", [S.FAILED, S.UNDELIVERED])
@pytest.mark.parametrize("current", [S.ACCEPTED, S.QUEUED, S.SENDING, S.SENT])
def test_failure_ends_a_message_not_yet_delivered(current, ending):
    assert moves_forward(current, ending)


@pytest.mark.parametrize("ending", [S.FAILED, S.UNDELIVERED])
@pytest.mark.parametrize("current", [S.DELIVERED, S.READ])
def test_failure_after_delivery_is_ignored(current, ending):
    # Given a message the contact already has, a late failure callback does not undo it
    assert not moves_forward(current, ending)


@pytest.mark.parametrize("ended", [S.FAILED, S.UNDELIVERED])
@pytest.mark.parametrize("new", list(MessageStatus))
def test_nothing_moves_an_ended_message(ended, new):
    assert not moves_forward(ended, new)


def test_the_allowed_previous_statuses_are_what_the_store_conditions_on():
    assert statuses_before(S.ACCEPTED) == frozenset()
    assert statuses_before(S.SENT) == {S.ACCEPTED, S.QUEUED, S.SENDING}
    assert statuses_before(S.FAILED) == {S.ACCEPTED, S.QUEUED, S.SENDING, S.SENT}


@pytest.mark.parametrize(
    ("previous", "new", "expected"),
    [
        (S.SENT, S.DELIVERED, True),
        (S.SENT, S.READ, True),  # read can arrive before delivered
        (S.DELIVERED, S.READ, False),  # the window opened on delivery already
        (S.QUEUED, S.SENT, False),
        (S.SENT, S.FAILED, False),
    ],
)
def test_the_first_delivered_or_read_is_when_the_contact_has_it(previous, new, expected):
    assert reaches_contact(previous, new) is expected
