"""Mandarin say-as (simplified characters): cn2an's numerals with the spoken rules it leaves out.

cn2an gets 零 in the middle (一百零二, 两万零八) and 十 for 10 right; speech also wants 两 for a
leading 2 before 百/千/万/亿 (两百, 一万两千; but 二十, 十二万) and for a count of 2 before a
measure word (两点, 两元, 两分钟), and reads years digit by digit (二零二六年).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import cn2an  # type: ignore[import-untyped]

from ivr.lang.sayas.base import SayAs

DIGITS = "零一二三四五六七八九"
CURRENCY_UNITS = {"USD": "美元", "EUR": "欧元", "GBP": "英镑", "JPY": "日元", "HKD": "港元"}
_LIANG = re.compile(r"(?<![十\d])二(?=[百千万亿])")


def _integer(n: int) -> str:
    """An integer as read: 两 before 百/千/万/亿 unless it ends a 十 (二十二万 keeps 二)."""
    return _LIANG.sub("两", str(cn2an.an2cn(str(n), "low")))


def _count(n: int) -> str:
    """A count before a measure word: 两 for 2 (两元, 两点, 两分钟)."""
    return "两" if n == 2 else _integer(n)


class Mandarin(SayAs):
    language = "zh-CN"
    default_currency = "CNY"

    def number(self, value: Decimal) -> str:
        sign = "负" if value < 0 else ""
        text = format(abs(value), "f")
        whole, _, fraction = text.partition(".")
        out = sign + _integer(int(whole))
        if fraction.strip("0"):
            out += "点" + "".join(DIGITS[int(d)] for d in fraction.rstrip("0"))
        return out

    def digits(self, digits: str) -> str:
        return " ".join(DIGITS[int(ch)] if ch.isdigit() else ch for ch in digits
                        if not ch.isspace())

    def currency(self, amount: Decimal, currency: str) -> str:
        code = currency.upper()
        amount = amount.quantize(Decimal("0.01"))
        if code not in ("CNY", "RMB"):
            return self.number(amount.normalize()) + CURRENCY_UNITS.get(code, code)
        sign = "负" if amount < 0 else ""
        cents = int(abs(amount) * 100)
        yuan, rest = divmod(cents, 100)
        jiao, fen = divmod(rest, 10)
        out = f"{_count(yuan)}元" if yuan else ""
        if jiao:
            out += f"{_count(jiao)}角"
        if fen:
            out += ("零" if yuan and not jiao else "") + f"{_count(fen)}分"
        return sign + (out or "零元")

    def ordinal(self, value: int) -> str:
        return "第" + str(cn2an.an2cn(str(value), "low"))

    def date(self, value: dt.date) -> str:
        year = "".join(DIGITS[int(d)] for d in str(value.year))
        return f"{year}年{_integer(value.month)}月{_integer(value.day)}日"

    def time(self, value: dt.time) -> str:
        out = f"{_count(value.hour)}点"
        if value.minute:
            out += ("零" if value.minute < 10 else "") + f"{_integer(value.minute)}分"
        return out

    def duration(self, seconds: int) -> str:
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        out = "".join(f"{_count(n)}{unit}" for n, unit in ((h, "小时"), (m, "分钟"), (s, "秒"))
                      if n)
        return out or "零秒"
