"""What every language's say-as does: the filters' words for numbers, amounts, dates, times and
durations, and how those words split into the fragments a recorded prompt pack holds.

A language implements the `say_*` methods on already-read values (`ivr.lang.sayas.values`);
`fragments` and `inventory` come free: a pack's `say/` directory needs one recording per
fragment the language can produce, found by saying a spread of sample values.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from decimal import Decimal
from functools import cached_property

_CJK = re.compile(r"[\u3400-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

SAMPLE_NUMBERS = (*range(0, 21), 22, 30, 40, 50, 60, 70, 80, 90, 99, 100, 102, 110, 200, 1000,
                  1002, 2000, 10000, 20008, 100000, 1000000, 10**8, 10**9, -1)
SAMPLE_AMOUNTS = ("0.05", "0.10", "0.12", "1.00", "2.00", "12.30", "1.01")


class SayAs(ABC):
    """One language's say-as."""

    language: str
    """The canonical tag (en-US, zh-CN, ko-KR)."""
    default_currency: str

    @abstractmethod
    def number(self, value: Decimal) -> str: ...

    @abstractmethod
    def digits(self, digits: str) -> str: ...

    @abstractmethod
    def currency(self, amount: Decimal, currency: str) -> str: ...

    @abstractmethod
    def ordinal(self, value: int) -> str: ...

    @abstractmethod
    def date(self, value: dt.date) -> str: ...

    @abstractmethod
    def time(self, value: dt.time) -> str: ...

    @abstractmethod
    def duration(self, seconds: int) -> str: ...

    def fragments(self, text: str) -> list[str]:
        """The pack fragments that say text: a character each in Han and Hangul (a syllable
        is a sound: 十, 이), a word each otherwise (twenty)."""
        out: list[str] = []
        for word in _WORD.findall(text.lower()):
            if _CJK.search(word):
                out.extend(ch for ch in word)
            else:
                out.append(word)
        return out

    @cached_property
    def inventory(self) -> tuple[str, ...]:
        """Every fragment this language's say-as produces (what a pack's say/ should hold)."""
        said: list[str] = [self.number(Decimal(n)) for n in SAMPLE_NUMBERS]
        said += [self.number(Decimal("2.5")), self.digits("0123456789")]
        said += [self.currency(Decimal(a), self.default_currency) for a in SAMPLE_AMOUNTS]
        said += [self.ordinal(n) for n in (1, 2, 3, 10, 12, 20, 21, 30, 31)]
        said += [self.date(dt.date(2026, m, d)) for m in range(1, 13) for d in (1, 2, 31 if
                                                                                m == 1 else 20)]
        said += [self.time(dt.time(h, m)) for h in range(24) for m in (0, 5, 30)]
        said += [self.duration(s) for s in (1, 2, 60, 61, 120, 3600, 7325)]
        return tuple(sorted({f for text in said for f in self.fragments(text)}))
