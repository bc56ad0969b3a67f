"""Reset windows for budgets and rate limits: ``30s, 1m, 5m, 1h, 1d, 1w, 1M, 1Q, 1Y``.

Rolling windows start at the first use after a reset and last the duration. Calendar-aligned windows
snap to UTC boundaries: the minute/hour/day, Monday 00:00 for weeks, the 1st for months, Jan/Apr/Jul/Oct
for quarters, Jan 1st for years (spec §6.2).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SystemClock", "Window", "parse_duration", "window_bounds"]

_DURATION = re.compile(r"^(\d+)(s|m|h|d|w|M|Q|Y)$")
_FIXED_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MONTHS = {"M": 1, "Q": 3, "Y": 12}


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass(frozen=True, slots=True)
class Window:
    """A parsed duration: a number of a unit (``1M`` is one calendar month)."""

    count: int
    unit: str

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_duration(text: str) -> Window:
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid reset duration {text!r}: use e.g. 30s, 1m, 5m, 1h, 1d, 1w, 1M, 1Q, 1Y")
    return Window(int(match.group(1)), match.group(2))


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.month - 1 + months
    return dt.replace(year=dt.year + total // 12, month=total % 12 + 1, day=1)


def _rolling_end(start: float, window: Window) -> float:
    if window.unit in _FIXED_SECONDS:
        return start + window.count * _FIXED_SECONDS[window.unit]
    begin = datetime.fromtimestamp(start, UTC)
    months = window.count * _MONTHS[window.unit]
    end = _add_months(begin.replace(day=1), months)
    # Keep the day of month where it exists (Jan 31 + 1M = Feb 28/29, as calendars do).
    day = min(begin.day, (_add_months(end, 1) - timedelta(days=1)).day)
    return end.replace(day=day, hour=begin.hour, minute=begin.minute, second=begin.second,
                       microsecond=begin.microsecond).timestamp()  # fmt: skip


def _aligned_start(now: float, window: Window) -> datetime:
    dt = datetime.fromtimestamp(now, UTC)
    unit = window.unit
    if unit == "s":
        return dt.replace(microsecond=0)
    if unit == "m":
        return dt.replace(second=0, microsecond=0)
    if unit == "h":
        return dt.replace(minute=0, second=0, microsecond=0)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return day
    if unit == "w":
        return day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    if unit == "M":
        return month
    if unit == "Q":
        return month.replace(month=(month.month - 1) // 3 * 3 + 1)
    return month.replace(month=1)


def window_bounds(
    now: float, window: Window, *, calendar_aligned: bool, start: float | None
) -> tuple[float, float]:
    """The window containing ``now``: (start, end).

    ``start`` is the current rolling window's start (None when there is none yet). A rolling window that has
    ended is replaced by one starting now; a calendar-aligned one is the calendar period around ``now``.
    """
    if calendar_aligned:
        begin = _aligned_start(now, window)
        if window.unit in _FIXED_SECONDS:
            step = window.count * _FIXED_SECONDS[window.unit]
            # Multi-unit aligned windows (5m, 6h) count from the epoch-aligned boundary.
            base = begin.timestamp()
            aligned = base - (base % step) if window.unit != "w" else base
            return aligned, aligned + step
        return begin.timestamp(), _add_months(begin, window.count * _MONTHS[window.unit]).timestamp()
    if start is not None:
        end = _rolling_end(start, window)
        if now < end:
            return start, end
    return now, _rolling_end(now, window)
