"""Numbers as words, both ways: what callers say for digits and amounts, and what prompts say.

One list of number words serves the parsers (a caller's "double five" into "55"), the recognisers
(the words a digits or number grammar may hear) and the say-as filters of prompts
(`say_number`, `say_currency`, `say_date`, `say_digits`), so the three never drift apart.
The parsers are English only; say-as for every language is `ivr.lang.sayas`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from num2words import num2words

from ivr.lang.normalize import normalize
from ivr.lang.sayas import speaker
from ivr.lang.sayas.en import CURRENCY_NAMES
from ivr.lang.sayas.values import to_date, to_decimal

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

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
            "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
            "seventeenth", "eighteenth", "nineteenth", "twentieth", "thirtieth")
SAY_AS_WORDS = (
    *NUMBER_WORDS, "billion", "minus", "a", "oh", "am", "pm", "hour", "hours", "minute", "minutes",
    "second", "seconds",
    *dict.fromkeys(w for names in CURRENCY_NAMES.values() for w in names), *MONTHS, *ORDINALS,
)
"""What the say-as filters can produce in English (`ivr.lang.sayas.en`)."""

SAY_AS = {"say_digits": "digits", "say_currency": "currency", "say_date": "date",
          "say_number": "number", "say_ordinal": "any", "say_time": "any", "say_duration": "any"}
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
# The words themselves are per language in `ivr.lang.sayas`; these are the English-default
# entry points code outside templates calls.

def say_digits(value: Any, language: str = "en-US") -> str:
    """Digits spoken one by one: TTS reads '12345678' as a number otherwise."""
    return speaker(language).digits(str(value))


def say_number(value: Any, language: str = "en-US") -> str:
    number = to_decimal(value)
    return str(value) if number is None else speaker(language).number(number)


def say_currency(value: Any, currency: str = "USD", language: str = "en-US") -> str:
    amount = to_decimal(value)
    return str(value) if amount is None else speaker(language).currency(amount, currency)


def say_date(value: Any, language: str = "en-US") -> str:
    date = to_date(value)
    return str(value) if date is None else speaker(language).date(date)


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
