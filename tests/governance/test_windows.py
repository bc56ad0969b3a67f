"""Reset windows, every duration, on dates that tell the calendar rules apart.

The counter stores' tests (test_counter_stores.py) check that a window resets when it ends; this file pins
where each window starts and ends: month ends, quarters, leap years and year boundaries, rolling and
calendar-aligned, to the microsecond.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bifrost_asgi.governance.windows import SystemClock, Window, parse_duration, window_bounds


@pytest.fixture(autouse=True, params=["UTC0", "NST+3:30"], ids=["utc-host", "utc-3:30-host"])
def _host_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Windows are UTC whatever the host's local zone: each test also runs on a host at UTC-3:30."""
    monkeypatch.setenv("TZ", str(request.param))
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> float:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC).timestamp()


def rolling(now: float, duration: str, start: float | None = None) -> tuple[float, float]:
    return window_bounds(now, parse_duration(duration), calendar_aligned=False, start=start)


def aligned(now: float, duration: str) -> tuple[float, float]:
    return window_bounds(now, parse_duration(duration), calendar_aligned=True, start=None)


# -- parsing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "unit"),
    [("30s", 30, "s"), ("1m", 1, "m"), ("5m", 5, "m"), ("1h", 1, "h"), ("1d", 1, "d"), ("2w", 2, "w"),
     ("1M", 1, "M"), ("1Q", 1, "Q"), ("10Y", 10, "Y"), (" 5m\n", 5, "m")],
)  # fmt: skip
def test_parse_duration(text: str, count: int, unit: str) -> None:
    window = parse_duration(text)
    assert window == Window(count, unit)
    assert str(window) == text.strip()


@pytest.mark.parametrize("text", ["", "m", "0m", "00h", "1.5h", "-1m", "1 m", "1x", "1mo", "m1", "1q", "1y1"])
def test_invalid_durations_are_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == (
        f"invalid reset duration {text!r}: use e.g. 30s, 1m, 5m, 1h, 1d, 1w, 1M, 1Q, 1Y"
    )


def test_system_clock_is_wall_time() -> None:
    before = time.time()
    now = SystemClock().now()
    assert before <= now <= time.time()


# -- rolling windows ---------------------------------------------------------------------------------------

# A rolling window opened at this instant: the last day of a leap January, with microseconds to carry.
JAN31 = utc(2024, 1, 31, 12, 34, 56, 500_000)

ROLLING = [
    # duration, opened at, ends at
    ("1s", JAN31, JAN31 + 1),
    ("30s", JAN31, JAN31 + 30),
    ("1m", JAN31, JAN31 + 60),
    ("5m", JAN31, JAN31 + 300),
    ("1h", JAN31, JAN31 + 3600),
    ("6h", JAN31, JAN31 + 6 * 3600),
    ("1d", JAN31, utc(2024, 2, 1, 12, 34, 56, 500_000)),
    ("3d", JAN31, utc(2024, 2, 3, 12, 34, 56, 500_000)),
    ("1w", JAN31, utc(2024, 2, 7, 12, 34, 56, 500_000)),
    ("2w", JAN31, utc(2024, 2, 14, 12, 34, 56, 500_000)),
    # 31 January + 1M is the end of February, leap year or not.
    ("1M", JAN31, utc(2024, 2, 29, 12, 34, 56, 500_000)),
    ("1M", utc(2023, 1, 31, 8), utc(2023, 2, 28, 8)),
    ("1M", utc(2024, 3, 31), utc(2024, 4, 30)),
    ("1M", utc(2024, 1, 15, 9, 30), utc(2024, 2, 15, 9, 30)),  # mid-month: the same day
    ("1M", utc(2024, 12, 31, 23, 59, 59), utc(2025, 1, 31, 23, 59, 59)),  # into the next year
    ("2M", utc(2023, 12, 31, 6), utc(2024, 2, 29, 6)),
    ("2M", JAN31, utc(2024, 3, 31, 12, 34, 56, 500_000)),  # March has a 31st again
    ("13M", utc(2024, 1, 31), utc(2025, 2, 28)),
    ("1Q", utc(2024, 2, 15, 10), utc(2024, 5, 15, 10)),  # mid-quarter: three months on, not a boundary
    ("1Q", utc(2023, 8, 31), utc(2023, 11, 30)),
    ("1Q", utc(2024, 11, 30, 1), utc(2025, 2, 28, 1)),
    ("1Q", utc(2023, 11, 30, 1), utc(2024, 2, 29, 1)),
    ("2Q", utc(2024, 8, 31), utc(2025, 2, 28)),
    ("1Y", utc(2024, 2, 29, 18), utc(2025, 2, 28, 18)),  # a leap day's year ends on the 28th
    ("4Y", utc(2024, 2, 29, 18), utc(2028, 2, 29, 18)),  # and four years on, on the 29th again
    ("1Y", utc(2023, 7, 14, 3), utc(2024, 7, 14, 3)),
    ("1Y", utc(2024, 12, 31, 23, 59, 59, 999_999), utc(2025, 12, 31, 23, 59, 59, 999_999)),
]


@pytest.mark.parametrize(("duration", "opened", "end"), ROLLING, ids=[f"{d}-{o}" for d, o, _ in ROLLING])
def test_a_rolling_window_lasts_its_duration_from_first_use(duration: str, opened: float, end: float) -> None:
    assert rolling(opened, duration) == (opened, end)


@pytest.mark.parametrize(("duration", "opened", "end"), ROLLING, ids=[f"{d}-{o}" for d, o, _ in ROLLING])
def test_a_rolling_window_holds_until_its_end_then_restarts_there(
    duration: str, opened: float, end: float
) -> None:
    assert rolling(opened, duration, start=opened) == (opened, end)
    assert rolling(end - 0.001, duration, start=opened) == (opened, end)
    restarted = rolling(end, duration, start=opened)
    assert restarted == (end, rolling(end, duration)[1])
    later = end + 12_345.5
    assert rolling(later, duration, start=opened) == (later, rolling(later, duration)[1])


# -- calendar-aligned windows ------------------------------------------------------------------------------

NOW = utc(2024, 1, 3, 12, 34, 56, 500_000)  # a Wednesday

ALIGNED = [
    # duration, now, the UTC calendar period around it
    ("1s", NOW, utc(2024, 1, 3, 12, 34, 56), utc(2024, 1, 3, 12, 34, 57)),
    ("30s", NOW, utc(2024, 1, 3, 12, 34, 30), utc(2024, 1, 3, 12, 35)),
    ("1m", NOW, utc(2024, 1, 3, 12, 34), utc(2024, 1, 3, 12, 35)),
    ("5m", NOW, utc(2024, 1, 3, 12, 30), utc(2024, 1, 3, 12, 35)),
    ("11m", NOW, utc(2024, 1, 3, 12, 30), utc(2024, 1, 3, 12, 41)),  # multiples of 11 minutes since 1970
    ("1h", NOW, utc(2024, 1, 3, 12), utc(2024, 1, 3, 13)),
    ("7h", NOW, utc(2024, 1, 3, 10), utc(2024, 1, 3, 17)),  # multiples of 7 hours since 1970, not the day
    ("1d", NOW, utc(2024, 1, 3), utc(2024, 1, 4)),
    ("2d", NOW, utc(2024, 1, 2), utc(2024, 1, 4)),  # day 19725 since 1970 is odd: its pair began on the 2nd
    ("1d", utc(2024, 2, 29, 23, 59, 59), utc(2024, 2, 29), utc(2024, 3, 1)),
    ("1d", utc(2024, 12, 31, 23), utc(2024, 12, 31), utc(2025, 1, 1)),
    # Weeks start on Monday: a Sunday belongs to the week that began six days before, across a month end.
    ("1w", utc(2024, 3, 3, 23, 59), utc(2024, 2, 26), utc(2024, 3, 4)),
    ("1w", utc(2024, 2, 26), utc(2024, 2, 26), utc(2024, 3, 4)),  # Monday 00:00 opens its own week
    ("1w", NOW, utc(2024, 1, 1), utc(2024, 1, 8)),
    ("1w", utc(2025, 1, 1, 9), utc(2024, 12, 30), utc(2025, 1, 6)),  # a week across New Year
    ("2w", utc(2024, 3, 3, 23, 59), utc(2024, 2, 26), utc(2024, 3, 11)),  # from this week's Monday
    ("1M", utc(2024, 2, 29, 23, 59, 59), utc(2024, 2, 1), utc(2024, 3, 1)),
    ("1M", utc(2023, 2, 28, 12), utc(2023, 2, 1), utc(2023, 3, 1)),
    ("1M", utc(2024, 1, 31, 23), utc(2024, 1, 1), utc(2024, 2, 1)),
    ("1M", utc(2024, 12, 31, 23, 59, 59, 999_999), utc(2024, 12, 1), utc(2025, 1, 1)),
    ("2M", utc(2024, 12, 15), utc(2024, 12, 1), utc(2025, 2, 1)),
    ("1Y", utc(2024, 7, 15, 6), utc(2024, 1, 1), utc(2025, 1, 1)),
    ("1Y", utc(2024, 12, 31, 23, 59, 59, 999_999), utc(2024, 1, 1), utc(2025, 1, 1)),
    ("1Y", utc(2025, 1, 1), utc(2025, 1, 1), utc(2026, 1, 1)),
    ("2Y", utc(2024, 2, 29), utc(2024, 1, 1), utc(2026, 1, 1)),
    ("1Q", utc(2024, 9, 30, 23, 59, 59), utc(2024, 7, 1), utc(2024, 10, 1)),
    ("1Q", utc(2024, 10, 1), utc(2024, 10, 1), utc(2025, 1, 1)),
    ("1Q", utc(2024, 12, 31, 23, 59), utc(2024, 10, 1), utc(2025, 1, 1)),  # into the next year
    ("1Q", utc(2024, 2, 29, 12), utc(2024, 1, 1), utc(2024, 4, 1)),
    ("2Q", utc(2024, 5, 15), utc(2024, 4, 1), utc(2024, 10, 1)),
    ("2Q", utc(2024, 11, 15), utc(2024, 10, 1), utc(2025, 4, 1)),
]


@pytest.mark.parametrize(
    ("duration", "now", "start", "end"), ALIGNED, ids=[f"{d}-{n}" for d, n, _, _ in ALIGNED]
)
def test_a_calendar_aligned_window_is_the_utc_period_around_now(
    duration: str, now: float, start: float, end: float
) -> None:
    assert aligned(now, duration) == (start, end)
    # Where a rolling window began does not move a calendar one.
    assert window_bounds(now, parse_duration(duration), calendar_aligned=True, start=now - 1) == (start, end)


# Each month's quarter, from the middle of the month: every quarter starts in Jan, Apr, Jul or Oct.
QUARTER_OF_MONTH = {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 4, 7: 7, 8: 7, 9: 7, 10: 10, 11: 10, 12: 10}


@pytest.mark.parametrize("month", range(1, 13))
def test_a_quarter_runs_from_the_first_of_jan_apr_jul_or_oct(month: int) -> None:
    first = QUARTER_OF_MONTH[month]
    end = utc(2025, 1, 1) if first == 10 else utc(2024, first + 3, 1)
    assert aligned(utc(2024, month, 15, 12), "1Q") == (utc(2024, first, 1), end)
    # Mid-quarter, a rolling quarter is three months from its first use instead.
    rolled = utc(2025, month + 3 - 12, 15, 12) if month > 9 else utc(2024, month + 3, 15, 12)
    assert rolling(utc(2024, month, 15, 12), "1Q") == (utc(2024, month, 15, 12), rolled)
