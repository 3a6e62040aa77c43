"""What a say-as filter may be handed (a number, "12.30", "2026-03-02", "14:05", 90 seconds),
read into one type per filter; None when it is not one, so the filter says the value as is."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any


def to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).replace(",", "").strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def to_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def to_time(value: Any) -> dt.time | None:
    """A time of day: a time, a datetime, or "HH:MM[:SS]" (an ISO datetime string too)."""
    if isinstance(value, dt.datetime):
        return value.time()
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        text = value.strip()
        if "T" in text:
            text = text.split("T", 1)[1]
        try:
            return dt.time.fromisoformat(text[:8])
        except ValueError:
            return None
    return None


def to_seconds(value: Any) -> int | None:
    """A duration in whole seconds: a timedelta, or a number of seconds."""
    if isinstance(value, dt.timedelta):
        return max(0, round(value.total_seconds()))
    number = to_decimal(value)
    return None if number is None else max(0, round(number))
