"""English say-as (num2words), the words `ivr.lang.grammars` recognises in prompts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from num2words import num2words

from ivr.lang.sayas.base import SayAs

CURRENCY_NAMES = {"USD": ("dollar", "dollars", "cent", "cents"),
                  "EUR": ("euro", "euros", "cent", "cents"),
                  "GBP": ("pound", "pounds", "penny", "pence")}
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _words(value: Decimal | int, **kwargs: str) -> str:
    return str(num2words(value, lang="en", **kwargs)).replace("-", " ")


def _count(n: int, one: str, many: str) -> str:
    return f"{_words(n)} {one if n == 1 else many}"


class English(SayAs):
    language = "en-US"
    default_currency = "USD"

    def number(self, value: Decimal) -> str:
        return _words(value)

    def digits(self, digits: str) -> str:
        return " ".join(ch for ch in digits if not ch.isspace())

    def currency(self, amount: Decimal, currency: str) -> str:
        whole = int(amount)
        cents = int((abs(amount) - abs(whole)) * 100)
        unit1, units, sub1, subs = CURRENCY_NAMES.get(currency.upper(),
                                                      (currency, currency, "cent", "cents"))
        text = f"{_words(whole)} {unit1 if abs(whole) == 1 else units}"
        if cents:
            text += f" and {_words(cents)} {sub1 if cents == 1 else subs}"
        return text

    def ordinal(self, value: int) -> str:
        return _words(value, to="ordinal")

    def date(self, value: dt.date) -> str:
        return f"{value:%B} {_words(value.day, to='ordinal')}, {_words(value.year, to='year')}"

    def time(self, value: dt.time) -> str:
        hour = value.hour % 12 or 12
        half = "am" if value.hour < 12 else "pm"
        if value.minute == 0:
            return f"{_words(hour)} {half}"
        minute = _words(value.minute)
        if value.minute < 10:
            minute = f"oh {minute}"
        return f"{_words(hour)} {minute} {half}"

    def duration(self, seconds: int) -> str:
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        parts = [_count(n, one, many) for n, one, many in
                 ((h, "hour", "hours"), (m, "minute", "minutes"), (s, "second", "seconds")) if n]
        if not parts:
            return _count(0, "second", "seconds")
        return parts[0] if len(parts) == 1 else f"{' '.join(parts[:-1])} and {parts[-1]}"
