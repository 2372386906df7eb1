"""The injected clock: whole seconds in UTC, frozen for tests and movable forward."""

from datetime import UTC, datetime, timedelta

from whatsapp_gateway.clock import Clock

FIXED = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_fixed_clock_returns_the_fixed_time():
    clock = Clock(fixed=FIXED)

    assert clock.now() == FIXED
    assert clock.now() == clock.now()


def test_now_drops_microseconds():
    # Given a clock frozen at a time with a fraction of a second
    clock = Clock(fixed=FIXED.replace(microsecond=999_999))

    # Then now() is in whole seconds (DynamoDB TTLs are epoch seconds)
    assert clock.now() == FIXED
    assert clock.now().microsecond == 0


def test_advance_moves_now_forward_and_returns_the_new_now():
    # Given a fixed clock
    clock = Clock(fixed=FIXED)

    # When it is advanced by 24 hours
    moved = clock.advance(24 * 3600)

    # Then the returned value and later calls are 24 hours later
    assert moved == FIXED + timedelta(hours=24)
    assert clock.now() == moved


def test_advances_accumulate_and_can_go_back():
    clock = Clock(fixed=FIXED)

    clock.advance(60)
    clock.advance(30)
    assert clock.now() == FIXED + timedelta(seconds=90)

    clock.advance(-90)
    assert clock.now() == FIXED


def test_fractional_advances_accumulate_but_now_stays_in_whole_seconds():
    # Given a fixed clock advanced by less than a second
    clock = Clock(fixed=FIXED)

    # When fractions of a second add up
    first = clock.advance(0.4)
    second = clock.advance(0.4)
    third = clock.advance(0.4)

    # Then now() only moves once a whole second has passed
    assert first == second == FIXED
    assert third == FIXED + timedelta(seconds=1)
    assert third.microsecond == 0


def test_system_clock_is_aware_utc_in_whole_seconds_and_can_be_advanced():
    # Given a clock that is not frozen
    before = datetime.now(UTC).replace(microsecond=0)
    clock = Clock()
    now = clock.now()
    after = datetime.now(UTC)

    # Then it follows the system time, in UTC and whole seconds
    assert now.tzinfo is UTC
    assert now.microsecond == 0
    assert before <= now <= after

    # And moving it forward a day shows a window expiring without waiting
    assert clock.advance(24 * 3600) - now >= timedelta(hours=24)
