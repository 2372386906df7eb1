"""The gateway's notion of now, injected everywhere a rule needs it.

Whole seconds in UTC: window expiries are DynamoDB TTL values, which are epoch seconds. The local
stack moves the clock forward to show a window expiring without waiting 24 hours.
"""

from datetime import UTC, datetime, timedelta


class Clock:
    """The system time, optionally frozen at ``fixed`` (tests), plus an offset (local stack)."""

    def __init__(self, fixed: datetime | None = None) -> None:
        self._fixed = fixed
        self._offset = timedelta()

    def now(self) -> datetime:
        base = self._fixed or datetime.now(UTC)
        return (base + self._offset).replace(microsecond=0)

    def advance(self, seconds: float) -> datetime:
        self._offset += timedelta(seconds=seconds)
        return self.now()
