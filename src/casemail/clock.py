"""The one source of "now".

Everything that needs the time asks a ``Clock``. Production uses
``SystemClock``; tests use ``FrozenClock`` and move it forward instead of
sleeping. Times are timezone-aware UTC throughout.
"""

from __future__ import annotations

import datetime as dt
import threading


def utc(value: dt.datetime) -> dt.datetime:
    """The same instant, as an aware UTC datetime (naive means UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


class Clock:
    def now(self) -> dt.datetime:
        raise NotImplementedError


class SystemClock(Clock):
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FrozenClock(Clock):
    """A clock that only moves when told to; safe to share across threads."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = utc(start or dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC))
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def set(self, when: dt.datetime) -> None:
        with self._lock:
            self._now = utc(when)

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> None:
        step = delta if delta is not None else dt.timedelta(**kwargs)
        with self._lock:
            self._now += step


class OffsetClock(Clock):
    """The system clock shifted by a fixed amount (``sweep --as-of``)."""

    def __init__(self, at: dt.datetime, base: Clock | None = None) -> None:
        self._base = base or SystemClock()
        self._offset = utc(at) - self._base.now()

    def now(self) -> dt.datetime:
        return self._base.now() + self._offset
