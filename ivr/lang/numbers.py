"""Numbers as words, both ways: what callers say for digits and amounts, and what prompts say.

One list of number words serves the parsers (a caller's "double five" into "55"), the recognisers
(the words a digits or number grammar may hear) and the say-as filters of prompts
(`say_number`, `say_currency`, `say_date`, `say_digits`), so the three never drift apart.
English only for now: other languages' say-as goes through num2words, and their callers' number
words are not yet known to the parsers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from num2words import num2words

from ivr.lang.normalize import normalize

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""Digit names by value."""
SPOKEN_DIGITS = ("zero", "oh", *DIGITS[1:])
"""What a caller says for a digit (a recogniser's digit words)."""
DIGIT_VALUES = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "to": "2", "too": "2",
    "three": "3", "four": "4", "for": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9",
}
"""Digit words as a recogniser or a typist may spell them (homophones too) -> digit."""
TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SMALL = {**{w: i for i, w in enumerate(DIGITS)}, **{w: 10 + i for i, w in enumerate(TEENS)},
         **{w: 20 + 10 * i for i, w in enumerate(TENS)}}
"""Number words below a hundred -> value."""
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
NUMBER_WORDS = (*SPOKEN_DIGITS, *TEENS, *TENS, *SCALES, "and", "point")
"""What a caller says for a number or an amount (a recogniser's number words)."""

CURRENCY_NAMES = {"USD": ("dollar", "dollars", "cent", "cents"),
                  "EUR": ("euro", "euros", "cent", "cents"),
                  "GBP": ("pound", "pounds", "penny", "pence")}
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
            "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
            "seventeenth", "eighteenth", "nineteenth", "twentieth", "thirtieth")
SAY_AS_WORDS = (
    *NUMBER_WORDS, "billion", "minus", "a",
    *dict.fromkeys(w for names in CURRENCY_NAMES.values() for w in names), *MONTHS, *ORDINALS,
)
"""What `say_number`, `say_currency`, `say_date` and `say_digits` can produce (English)."""

SAY_AS = {"say_digits": "digits", "say_currency": "currency", "say_date": "date",
          "say_number": "number"}
"""Say-as filters of the template language -> the kind of words they produce."""


# --- what callers say -------------------------------------------------------------------------

def parse_digits(text: str) -> str | None:
    """A digit string from spoken digits ("double five oh" -> "550"); None when not digits."""
    out = []
    for word in normalize(text).split():
        if word.isdigit():
            out.append(word)
        elif word in DIGIT_VALUES:
            out.append(DIGIT_VALUES[word])
        elif word in ("double", "triple"):
            out.append(word)
        else:
            return None
    digits = ""
    repeat = 1
    for token in out:
        if token == "double":
            repeat = 2
        elif token == "triple":
            repeat = 3
        else:
            digits += token[0] * (repeat - 1) + token
            repeat = 1
    return digits or None


def parse_number(text: str) -> Decimal | None:
    """A number from words or digits ("one thousand and five point two"); None when not one."""
    words = normalize(text.replace("-", " ")).split()
    words = [w for w in words if w != "and"]
    if not words:
        return None
    if len(words) == 1:
        try:
            return Decimal(words[0].replace(",", ""))
        except ArithmeticError:
            pass
    total = current = 0
    decimals: list[str] | None = None
    for w in words:
        if decimals is not None:
            d = parse_digits(w)
            if d is None:
                return None
            decimals.append(d)
        elif w in ("point", "dot"):
            decimals = []
        elif w in SMALL:
            current += SMALL[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in SCALES:
            total += max(current, 1) * SCALES[w]
            current = 0
        elif w.isdigit():
            current += int(w)
        else:
            return None
    value = Decimal(total + current)
    if decimals:
        value += Decimal("0." + "".join(decimals))
    return value


# --- what prompts say (say-as) ----------------------------------------------------------------

def _lang(language: str) -> str:
    return language.split("-")[0].lower() or "en"


def say_digits(value: Any) -> str:
    """Digits spoken one by one: TTS reads '12345678' as a number otherwise."""
    return " ".join(ch for ch in str(value) if not ch.isspace())


def say_number(value: Any, language: str = "en-US") -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return str(num2words(number, lang=_lang(language))).replace("-", " ")


def say_currency(value: Any, currency: str = "USD", language: str = "en-US") -> str:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return str(value)
    whole = int(amount)
    cents = int((abs(amount) - abs(whole)) * 100)
    lang = _lang(language)
    unit1, units, sub1, subs = CURRENCY_NAMES.get(currency.upper(),
                                                  (currency, currency, "cent", "cents"))
    text = f"{num2words(whole, lang=lang)} {unit1 if abs(whole) == 1 else units}"
    if cents:
        text += f" and {num2words(cents, lang=lang)} {sub1 if cents == 1 else subs}"
    return text.replace("-", " ")


def say_date(value: Any, language: str = "en-US") -> str:
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return str(value)
    if not isinstance(value, dt.date):
        return str(value)
    lang = _lang(language)
    day = str(num2words(value.day, lang=lang, to="ordinal"))
    year = str(num2words(value.year, lang=lang, to="year"))
    return f"{value:%B} {day}, {year}".replace("-", " ")


def number_words(token: str) -> str:
    """A written number ("1,042.5", "12") as a prompt's TTS says it, in words."""
    clean = token.replace(",", "")
    try:
        if "." in clean:
            return str(num2words(float(clean))).replace("-", " ").replace(",", "")
        return str(num2words(int(clean))).replace("-", " ").replace(",", "")
    except (ValueError, OverflowError):
        return " ".join(DIGITS[int(c)] for c in clean if c.isdigit())


def say_as_kind(template: str) -> str:
    """The kind of words a template part produces: its say-as filter's, else "any"."""
    for name, kind in SAY_AS.items():
        if name in template:
            return kind
    return "any"
