"""Business-hours calendars: weekly opening times in a time zone, plus holidays.

A contact centre's hours are local to the centre, not to the server: every check converts the
clock to the calendar's zone first, so a server in UTC opens the New York line at 08:00 New York.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _day_set(spec: str) -> set[int]:
    """`mon-fri`, `sat`, `mon,wed,fri`, `daily` into weekday numbers (Monday is 0)."""
    out: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        if part in ("daily", "all", "every"):
            return set(range(7))
        if "-" in part:
            a, b = part.split("-", 1)
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"unknown day range {part!r}; use mon..sun")
            i, j = DAYS.index(a), DAYS.index(b)
            out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part in DAYS:
            out.add(DAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r}; use mon..sun, ranges like mon-fri, or daily")
    return out


def _ranges(spec: str) -> list[tuple[dt.time, dt.time]]:
    """`08:00-12:00, 13:00-18:00` into time ranges; `closed` is none; `24:00` ends the day."""
    if spec.strip().lower() == "closed":
        return []
    out = []
    for part in spec.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ValueError(f"{part.strip()!r} is not a time range like 08:00-18:00")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{part.strip()!r} has an impossible time")
        end = dt.time.max if h2 == 24 else dt.time(h2, m2)
        out.append((dt.time(h1, m1), end))
    return out


class Calendar(BaseModel):
    """Opening hours of one line of business."""

    model_config = ConfigDict(extra="forbid")

    tz: str = "UTC"
    weekly: dict[str, str] = Field(
        default_factory=dict,
        description='day spec to hours, e.g. {"mon-fri": "08:00-18:00", "sat": "09:00-13:00"}',
    )
    holidays: list[dt.date] = Field(default_factory=list)

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/London)") from None
        return value

    @field_validator("weekly")
    @classmethod
    def _valid_weekly(cls, value: dict[str, str]) -> dict[str, str]:
        for days, hours in value.items():
            if not isinstance(hours, str):
                raise ValueError(f"hours for {days!r} must be a quoted string like \"08:00-18:00\"")
            _day_set(days)
            _ranges(hours)
        return value

    def is_open(self, when: dt.datetime) -> bool:
        if when.tzinfo is None:
            raise ValueError("calendar checks need an aware datetime")
        local = when.astimezone(ZoneInfo(self.tz))
        if local.date() in self.holidays:
            return False
        now = local.time().replace(tzinfo=None)
        for days, hours in self.weekly.items():
            if local.weekday() in _day_set(days):
                for start, end in _ranges(hours):
                    if start <= now < end or (end == dt.time.max and now >= start):
                        return True
                    # an overnight range (22:00-06:00) belongs to the day it starts on
                    if end < start and now >= start:
                        return True
            yesterday = (local.weekday() - 1) % 7
            if yesterday in _day_set(days) and (local.date() - dt.timedelta(days=1)) not in self.holidays:
                for start, end in _ranges(hours):
                    if end < start and now < end:
                        return True
        return False
