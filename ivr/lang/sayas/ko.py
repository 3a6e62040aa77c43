"""Korean say-as: Sino-Korean numbers (num2words `ko`) for amounts, dates and clock times, native
numbers where Korean counts with them (한 시간, 두 번째)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from num2words import num2words

from ivr.lang.sayas.base import SayAs

DIGITS = ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")
MONTHS = {6: "유", 10: "시"}
"""Months whose Sino-Korean number is said short (유월, 시월)."""
NATIVE_UNITS = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
NATIVE_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
CURRENCY_UNITS = {"KRW": "원", "USD": "달러", "EUR": "유로", "CNY": "위안", "JPY": "엔"}


def _sino(n: int) -> str:
    return str(num2words(n, lang="ko"))


def _native(n: int) -> str:
    """A native Korean count before a counter (한, 두, 스무); Sino-Korean from 100 up."""
    if not 0 < n < 100:
        return _sino(n)
    tens, units = divmod(n, 10)
    if n == 20:
        return "스무"
    return NATIVE_TENS[tens] + NATIVE_UNITS[units]


class Korean(SayAs):
    language = "ko-KR"
    default_currency = "KRW"

    def number(self, value: Decimal) -> str:
        sign = "마이너스 " if value < 0 else ""
        whole, _, fraction = format(abs(value), "f").partition(".")
        out = sign + _sino(int(whole))
        if fraction.strip("0"):
            out += " 점 " + "".join(DIGITS[int(d)] for d in fraction.rstrip("0"))
        return out

    def digits(self, digits: str) -> str:
        return " ".join(DIGITS[int(ch)] if ch.isdigit() else ch for ch in digits
                        if not ch.isspace())

    def currency(self, amount: Decimal, currency: str) -> str:
        unit = CURRENCY_UNITS.get(currency.upper(), currency)
        return f"{self.number(amount.normalize())}{unit}"

    def ordinal(self, value: int) -> str:
        return f"{'첫' if value == 1 else _native(value)} 번째"

    def date(self, value: dt.date) -> str:
        month = MONTHS.get(value.month, _sino(value.month))
        return f"{_sino(value.year)}년 {month}월 {_sino(value.day)}일"

    def time(self, value: dt.time) -> str:
        out = f"{_sino(value.hour) if value.hour else '영'}시"
        if value.minute:
            out += f" {_sino(value.minute)}분"
        return out

    def duration(self, seconds: int) -> str:
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        parts = [f"{_native(h)} 시간"] if h else []
        parts += [f"{_sino(n)} {unit}" for n, unit in ((m, "분"), (s, "초")) if n]
        return " ".join(parts) or "영 초"
