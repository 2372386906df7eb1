"""The customer service window (CSW) and the per-category conversation windows."""

from datetime import UTC, datetime, timedelta

import pytest

from whatsapp_gateway.domain.windows import (
    WINDOW_LENGTH,
    Category,
    ContactState,
    ConversationWindow,
    ServiceWindow,
    open_conversation,
    service_window_after,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
SECOND = timedelta(seconds=1)


def message_id(n: int) -> str:
    return f"SM{n:032d}"


# --- customer service window ---------------------------------------------------------------


def test_service_window_closes_24_hours_after_the_inbound_message():
    # When a contact writes at T0
    window = service_window_after(T0)

    # Then the CSW records the message time and closes 24 hours later
    assert window == ServiceWindow(last_inbound_at=T0, expires_at=T0 + DAY)
    assert window.expires_at == T0 + WINDOW_LENGTH


@pytest.mark.parametrize(
    ("elapsed", "is_open"),
    [
        (timedelta(0), True),
        (DAY - SECOND, True),
        (DAY, False),
        (DAY + SECOND, False),
    ],
    ids=["at-inbound", "24h-minus-1s", "exactly-24h", "24h-plus-1s"],
)
def test_service_window_edges(elapsed, is_open):
    # Given a contact who wrote at T0
    window = service_window_after(T0)

    # Then the CSW is open until, and not including, 24 hours later
    assert window.is_open(T0 + elapsed) is is_open
    assert ContactState(service_window=window).service_window_open(T0 + elapsed) is is_open


@pytest.mark.parametrize("later_first", [False, True], ids=["in-order", "out-of-order"])
def test_later_inbound_message_leaves_the_later_window(later_first):
    # Given two inbound messages one hour apart, processed in either order
    earlier, later = T0, T0 + timedelta(hours=1)
    arrivals = [later, earlier] if later_first else [earlier, later]

    # When each leaves its service window
    windows = [service_window_after(at) for at in arrivals]

    # Then the later message's window expires later: the one the store must keep
    kept = max(windows, key=lambda window: window.expires_at)
    assert kept.last_inbound_at == later
    assert kept.expires_at == later + DAY
    assert kept.is_open(earlier + DAY)  # the earlier window alone would be closed here
    assert not service_window_after(earlier).is_open(earlier + DAY)


def test_no_service_window_means_closed():
    assert ContactState().service_window_open(T0) is False


# --- conversation windows -------------------------------------------------------------------


def test_open_conversation_without_a_window_opens_one_for_24_hours():
    # Given no utility window for the pair
    # When a utility template is delivered at T0
    window = open_conversation(None, Category.UTILITY, T0, message_id(1))

    # Then a 24-hour utility window opens, recording the message that opened it
    assert window == ConversationWindow(
        category=Category.UTILITY,
        opened_at=T0,
        expires_at=T0 + DAY,
        message_id=message_id(1),
    )


@pytest.mark.parametrize("elapsed", [SECOND, DAY - SECOND], ids=["1s-later", "24h-minus-1s"])
def test_open_conversation_while_open_returns_none(elapsed):
    # Given an open marketing window
    current = open_conversation(None, Category.MARKETING, T0, message_id(1))
    assert current is not None

    # When another marketing template is delivered before it expires
    second = open_conversation(current, Category.MARKETING, T0 + elapsed, message_id(2))

    # Then nothing opens and the current window is not extended
    assert second is None
    assert current.expires_at == T0 + DAY
    assert not current.is_open(T0 + DAY)


@pytest.mark.parametrize("elapsed", [DAY, DAY + SECOND], ids=["exactly-24h", "24h-plus-1s"])
def test_open_conversation_after_expiry_opens_a_new_window(elapsed):
    # Given a marketing window that has expired (its item may still be stored)
    current = open_conversation(None, Category.MARKETING, T0, message_id(1))
    assert current is not None

    # When a marketing template is delivered at or after its expiry
    now = T0 + elapsed
    renewed = open_conversation(current, Category.MARKETING, now, message_id(2))

    # Then a new window opens from now, a separate opening
    assert renewed is not None
    assert renewed.opened_at == now
    assert renewed.expires_at == now + DAY
    assert renewed.message_id == message_id(2)


def test_four_categories_open_at_once_and_independently():
    # Given one window per category, opened one hour apart
    opened: list[ConversationWindow] = []
    for hour, category in enumerate(Category):
        current = next((w for w in opened if w.category is category), None)
        window = open_conversation(current, category, T0 + timedelta(hours=hour), message_id(hour))
        assert window is not None  # another category being open does not block this one
        opened.append(window)
    state = ContactState(conversations=tuple(opened))

    # Then all four are open at the same time
    assert {w.category for w in state.open_conversations(T0 + timedelta(hours=3))} == set(Category)

    # When the first (marketing) expires, the others stay open
    first_expiry = T0 + DAY
    still_open = state.open_conversations(first_expiry)
    assert {w.category for w in still_open} == set(Category) - {Category.MARKETING}

    # And only marketing may open again: each category is decided by its own window
    for category in Category:
        reopened = open_conversation(
            state.conversation(category), category, first_expiry, message_id(9)
        )
        assert (reopened is not None) is (category is Category.MARKETING)


def test_contact_state_conversation_finds_the_window_of_a_category():
    utility = ConversationWindow(Category.UTILITY, T0, T0 + DAY, message_id(1))
    state = ContactState(conversations=(utility,))

    assert state.conversation(Category.UTILITY) is utility
    assert state.conversation(Category.MARKETING) is None


def test_open_conversations_leaves_out_expired_windows():
    # Given a stored window past its expiry (TTL deletes items late)
    expired = ConversationWindow(Category.UTILITY, T0 - DAY, T0, message_id(1))
    live = ConversationWindow(Category.SERVICE, T0, T0 + DAY, message_id(2))
    state = ContactState(conversations=(expired, live))

    # Then only the window whose expires_at is after now counts as open
    assert state.open_conversations(T0) == (live,)


# --- categories -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "category"),
    [
        ("MARKETING", Category.MARKETING),
        (" Authentication ", Category.AUTHENTICATION),
        ("TRANSACTIONAL", Category.UTILITY),
    ],
)
def test_category_from_meta(meta, category):
    assert Category.from_meta(meta) is category


def test_category_from_meta_rejects_unknown_categories():
    with pytest.raises(ValueError, match="is not a valid Category"):
        Category.from_meta("PROMOTIONAL")


def test_categories_are_lower_case_strings():
    assert [str(c) for c in Category] == ["marketing", "utility", "authentication", "service"]
