"""hours: calendars in their own time zone, holidays, weekly ranges, an injectable clock."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import Harness

from ivr.calendar import Calendar
from ivr.flow.model import Flow

UTC = dt.timezone.utc


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


HOURS = """
    flow: h
    start: check
    nodes:
      check:
        hours: {calendar: business}
        open: open_node
        closed: closed_node
      open_node: {say: "We are open.", hangup: true}
      closed_node: {say: "We are closed.", hangup: true}
"""


@pytest.fixture
def hours_flows(harness: Harness) -> dict[str, Flow]:
    return harness.load(HOURS)


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        # server clock in UTC; the calendar is New York (UTC-5 in winter, UTC-4 in summer)
        (utc(2026, 3, 2, 13, 30), "open_node"),  # Monday 08:30 EST (13:30 UTC)
        (utc(2026, 3, 2, 13, 0), "open_node"),  # Monday 08:00 EST: opening minute
        (utc(2026, 3, 2, 12, 59), "closed_node"),  # Monday 07:59 EST
        (utc(2026, 3, 2, 22, 59), "open_node"),  # Monday 17:59 EST
        (utc(2026, 3, 2, 23, 0), "closed_node"),  # Monday 18:00 EST: closing is exclusive
        (utc(2026, 3, 3, 2, 0), "closed_node"),  # Tuesday in UTC but Monday 21:00 in New York
        (utc(2026, 7, 6, 12, 30), "open_node"),  # Monday 08:30 EDT (summer time)
        (utc(2026, 3, 7, 15, 0), "open_node"),  # Saturday 10:00 EST
        (utc(2026, 3, 7, 18, 30), "closed_node"),  # Saturday 13:30 EST
        (utc(2026, 3, 8, 15, 0), "closed_node"),  # Sunday
        (utc(2026, 12, 25, 15, 0), "closed_node"),  # Friday, but a holiday
        (utc(2026, 12, 26, 4, 30), "closed_node"),  # 23:30 on the holiday in New York
        (utc(2026, 12, 24, 15, 0), "open_node"),  # the day before the holiday
    ],
)
async def test_hours_in_the_calendar_time_zone(
    harness: Harness, hours_flows: dict[str, Flow], clock: dt.datetime, expected: str
) -> None:
    result = await harness.run(hours_flows, clock=clock)
    assert result.ctx.path == ["check", expected]


async def test_clock_with_an_offset_is_converted(harness: Harness, hours_flows: dict[str, Flow]) -> None:
    # 10:00 in Shanghai on a Tuesday is 21:00 Monday in New York: closed
    shanghai = dt.timezone(dt.timedelta(hours=8))
    result = await harness.run(hours_flows, clock=dt.datetime(2026, 3, 3, 10, 0, tzinfo=shanghai))
    assert result.ctx.path == ["check", "closed_node"]


async def test_daily_calendar_in_another_zone(harness: Harness) -> None:
    flows = harness.load(HOURS.replace("calendar: business", "calendar: care"))
    # care is daily 08:00-22:00 Asia/Shanghai (UTC+8)
    assert (await harness.run(flows, clock=utc(2026, 3, 8, 0, 0))).ctx.path[-1] == "open_node"
    assert (await harness.run(flows, clock=utc(2026, 3, 8, 14, 0))).ctx.path[-1] == "closed_node"
    assert (await harness.run(flows, clock=utc(2026, 3, 7, 23, 59))).ctx.path[-1] == "closed_node"


@pytest.mark.parametrize(
    ("clock", "is_open"),
    [
        (utc(2026, 1, 5, 10, 0), True),  # Monday 10:00 London (GMT)
        (utc(2026, 1, 5, 12, 30), False),  # lunch gap between the two ranges
        (utc(2026, 1, 5, 13, 0), True),
        (utc(2026, 1, 5, 17, 0), False),
        (utc(2026, 7, 6, 8, 30), True),  # 09:30 BST
        (utc(2026, 7, 6, 16, 30), False),  # 17:30 BST
        (utc(2026, 1, 4, 10, 0), False),  # Sunday: closed
        (utc(2026, 1, 3, 10, 0), False),  # Saturday: not listed
    ],
)
def test_multiple_ranges_per_day(clock: dt.datetime, is_open: bool) -> None:
    calendar = Calendar(tz="Europe/London", weekly={"mon-fri": "09:00-12:00, 13:00-17:00", "sun": "closed"})
    assert calendar.is_open(clock) is is_open


def test_day_specs_and_end_of_day() -> None:
    cal = Calendar(tz="UTC", weekly={"mon,wed": "00:00-24:00", "fri-sun": "10:00-11:00"})
    assert cal.is_open(utc(2026, 3, 2, 23, 59, 59))  # Monday, just before midnight
    assert cal.is_open(utc(2026, 3, 4, 0, 0))  # Wednesday midnight
    assert not cal.is_open(utc(2026, 3, 3, 12, 0))  # Tuesday
    assert cal.is_open(utc(2026, 3, 8, 10, 30))  # Sunday, inside the wrapped fri-sun range
    assert not cal.is_open(utc(2026, 3, 8, 11, 0))


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        Calendar(tz="UTC", weekly={"daily": "00:00-24:00"}).is_open(dt.datetime(2026, 3, 2, 10, 0))


@pytest.mark.parametrize(
    ("weekly", "message"),
    [
        ({"funday": "08:00-18:00"}, "unknown day 'funday'"),
        ({"mon-fri": "8am-6pm"}, "is not a time range"),
        ({"mon": "25:00-26:00"}, "impossible time"),
    ],
)
def test_bad_weekly_specs_are_rejected(weekly: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Calendar(tz="UTC", weekly=weekly)


def test_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Calendar(tz="Mars/Olympus")


def test_overnight_range_belongs_to_the_day_it_starts() -> None:
    # a night shift Friday 22:00 to Saturday 06:00, and nothing else
    cal = Calendar(tz="UTC", weekly={"fri": "22:00-06:00"}, holidays=[dt.date(2026, 3, 13)])
    utc = dt.timezone.utc
    assert cal.is_open(dt.datetime(2026, 3, 6, 23, 30, tzinfo=utc))  # Friday night
    assert cal.is_open(dt.datetime(2026, 3, 7, 5, 59, tzinfo=utc))  # Saturday early
    assert not cal.is_open(dt.datetime(2026, 3, 7, 6, 0, tzinfo=utc))
    assert not cal.is_open(dt.datetime(2026, 3, 6, 5, 0, tzinfo=utc))  # Friday early: Thursday shut
    assert not cal.is_open(dt.datetime(2026, 3, 13, 23, 0, tzinfo=utc))  # a holiday Friday
    assert not cal.is_open(dt.datetime(2026, 3, 14, 2, 0, tzinfo=utc))  # ...and its night
