"""Matching what a caller said against a node's grammar.

A recogniser constrained by a grammar returns one of its phrases; a text channel returns whatever
was typed. Both go through the same matching here: the longest phrase that occurs in the utterance
as whole words wins, so "check my balance please" selects "balance".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal

BUILTINS = ("digits", "number", "yes_no", "currency", "date")

_WORD = re.compile(r"[^\w']+", re.UNICODE)

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "to": "2", "too": "2",
    "three": "3", "four": "4", "for": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9",
}
_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
YES = ("yes", "yeah", "yep", "correct", "right", "that's right", "sure", "ok", "okay")
NO = ("no", "nope", "wrong", "incorrect", "not right")


def normalize(text: str) -> str:
    return " ".join(w for w in _WORD.split(text.lower()) if w)


def _contains(haystack: str, needle: str) -> bool:
    return f" {needle} " in f" {haystack} "


def best_phrase(text: str, phrases: Iterable[str]) -> str | None:
    """The longest phrase contained in `text` as whole words, or None."""
    said = normalize(text)
    best: str | None = None
    for phrase in phrases:
        norm = normalize(phrase)
        if norm and _contains(said, norm) and (best is None or len(norm) > len(normalize(best))):
            best = phrase
    return best


def parse_digits(text: str) -> str | None:
    out = []
    for word in normalize(text).split():
        if word.isdigit():
            out.append(word)
        elif word in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[word])
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
        elif w in _SMALL:
            current += _SMALL[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in _SCALES:
            total += max(current, 1) * _SCALES[w]
            current = 0
        elif w.isdigit():
            current += int(w)
        else:
            return None
    value = Decimal(total + current)
    if decimals:
        value += Decimal("0." + "".join(decimals))
    return value


def parse_builtin(name: str, text: str) -> str | None:
    """Interpret an utterance with a built-in grammar; None is a nomatch."""
    if name == "digits":
        return parse_digits(text)
    if name in ("number", "currency"):
        cleaned = text.replace("$", " ").replace("dollars", " ").replace("dollar", " ")
        value = parse_number(cleaned)
        return None if value is None else str(value)
    if name == "yes_no":
        said = normalize(text)
        if best_phrase(said, NO):
            return "no"
        if best_phrase(said, YES):
            return "yes"
        return None
    if name == "date":
        m = re.search(r"\d{4}-\d{2}-\d{2}", text)
        return m.group(0) if m else None
    raise ValueError(f"unknown built-in grammar {name!r}")


def builtin_phrases(name: str) -> Sequence[str]:
    """Words a recogniser should expect for a built-in grammar."""
    if name == "yes_no":
        return (*YES, *NO)
    if name in ("digits",):
        return tuple(_DIGIT_WORDS)
    if name in ("number", "currency"):
        return (*_SMALL, *_SCALES, "point", "and")
    return ()


def dtmf_builtin(name: str, digits: str) -> str | None:
    """DTMF answers to built-in grammars: 1 is yes and 2 is no, as callers are told."""
    if name == "yes_no":
        return {"1": "yes", "2": "no"}.get(digits)
    if name in ("digits", "number", "currency"):
        return digits if digits.isdigit() else None
    return digits or None
