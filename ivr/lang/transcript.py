"""An open transcript (what a dictation engine such as Whisper wrote) mapped onto a grammar.

A node's grammar decides what the caller may have said, whatever the engine: a transcript is
never passed through raw. Each reading of it that the grammar allows comes back with a match
score in [0, 1] (how much of the transcript that reading explains), best first:

- `digits`: digit characters and words, "oh", "double four", tens and teens ("forty seven" ->
  47), homophones ("for", "to", "won", "ate") at a cost, fillers ("um", "my number is") at a
  small cost; a whole repetition of a code the grammar allows is read as that code (a
  decoder's repetition loop) at a cost; any other reading outside the length bounds is no
  reading. The text is digit words ("four seven one nine"), as the flow's `digits`
  interpretation expects.
- phrases (options, globals, `yes_no`): a phrase contained in the transcript as whole words
  scores 0.9-1 by how much of the transcript it covers (the longest wins); otherwise fuzzy
  similarity (rapidfuzz) of the letters without spaces, so "Call for reading." still reaches
  "call forwarding", and a transcript with extra words is compared with its best-matching span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from ivr.lang.grammars import Grammar
from ivr.lang.normalize import contains, normalize
from ivr.lang.numbers import DIGITS

__all__ = ["Reading", "map_transcript"]

DIGIT_WORD = {w: str(i) for i, w in enumerate(DIGITS)} | {"oh": "0", "o": "0"}
HOMOPHONES = {"for": "4", "fore": "4", "to": "2", "too": "2", "won": "1", "ate": "8",
              "niner": "9", "nein": "9", "sex": "6", "tree": "3", "free": "3"}
TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
         "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19"}
TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7",
        "eighty": "8", "ninety": "9"}
FILLERS = frozenset(("um", "uh", "er", "ah", "erm", "hmm", "the", "it's", "its", "is", "my",
                    "number", "code", "account", "pin", "card", "please", "okay", "ok", "so",
                    "and", "a", "an", "i", "it"))
HOMOPHONE_COST = 0.85
FILLER_COST = 0.95
UNKNOWN_COST = 0.5
LOOP_COST = 0.8
"""Whisper can repeat a short utterance until its length limit ("three three three" for
"three"); a string longer than the grammar allows that repeats one code is read as that code,
at this cost."""
PHRASE_FLOOR = 0.82
"""Below this similarity a phrase is no reading at all. Measured on the real-voice corpus: a
phrase in the grammar comes back spelled exactly (similarity 1) once the engine is prompted with
the grammar's phrases, unprompted near misses score 0.84 ("call for reading"), and the readings
of out-of-grammar speech that were accepted at 0.55 scored 0.57-0.80 ("call waiting" as "call
forwarding" 0.72, "eight" as "right" 0.80)."""
CONTAINED = 0.9
"""A phrase found whole in the transcript scores from this (a small part of a long transcript)
to 1 (the whole transcript)."""
SHORT_FORM = 5
"""Phrases shorter than this (letters) match only as whole words: "no" is not "not"."""


@dataclass(frozen=True)
class Reading:
    text: str
    """In the grammar's terms: the phrase as the flow wrote it, or digit words."""
    score: float


def _tokens(text: str) -> list[str]:
    # "6. 0. 0. 6." / "4,719" / "47-19" -> words and digit runs
    text = re.sub(r"(?<=\d)[,.](?=\d)", "", text.lower())
    return [t for t in re.split(r"[^\w']+", text.replace("-", " ")) if t]


def read_digits(text: str) -> tuple[str, float] | None:
    """The digit string in a transcript and how cleanly it reads (1: only digit material)."""
    out: list[str] = []
    score = 1.0
    repeat = 1
    tokens = _tokens(text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        value: str | None = None
        if tok.isdigit():
            value = tok
        elif tok in DIGIT_WORD:
            value = DIGIT_WORD[tok]
        elif tok in TEENS:
            value = TEENS[tok]
        elif tok in TENS:
            value = TENS[tok] + "0"
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if nxt in DIGIT_WORD and DIGIT_WORD[nxt] != "0":
                value, i = TENS[tok] + DIGIT_WORD[nxt], i + 1
        elif tok in HOMOPHONES:
            value, score = HOMOPHONES[tok], score * HOMOPHONE_COST
        elif tok in ("double", "triple"):
            repeat = 2 if tok == "double" else 3
            i += 1
            continue
        elif tok == "hundred" and out:
            value = "00"
        elif tok in FILLERS:
            score *= FILLER_COST
        else:
            score *= UNKNOWN_COST
        if value is not None:
            out.append(value[0] * (repeat - 1) + value)
            repeat = 1
        i += 1
    digits = "".join(out)
    return (digits, score) if digits else None


def _loop_unit(digits: str, lo: int, hi: int) -> str | None:
    """The code a repetition loop repeats ("3 3 3" for a 1-digit node, "5684 568" for 4): the
    shortest period within the grammar's bounds when the whole string follows it."""
    for p in range(max(1, lo), hi + 1):
        if len(digits) > p and all(digits[i] == digits[i - p] for i in range(p, len(digits))):
            return digits[:p]
    return None


def _digit_readings(grammar: Grammar, text: str) -> list[Reading]:
    got = read_digits(text)
    if got is None:
        return []
    digits, score = got
    lo, hi = grammar.min_words, grammar.max_words
    if hi and len(digits) > hi:
        unit = _loop_unit(digits, lo, hi)
        if unit is not None:
            digits, score = unit, score * LOOP_COST
    if len(digits) < lo or (hi and len(digits) > hi):
        return []
    return [Reading(" ".join(DIGITS[int(d)] for d in digits), round(score, 4))]


def _similarity(said: str, form: str) -> float:
    """How well normalised `said` reads as `form`, in [0, 1]."""
    if contains(said, form):
        # the phrase that explains more of what was said wins: "lost card" over "card"
        compact = said.replace(" ", "")
        return CONTAINED + (1.0 - CONTAINED) * min(1.0, len(form.replace(" ", "")) / len(compact))
    if len(form.replace(" ", "")) < SHORT_FORM:
        return 0.0
    whole = fuzz.ratio(said.replace(" ", ""), form.replace(" ", "")) / 100
    words = said.split()
    span = 0.0
    n = len(form.split())
    if len(words) > n:  # extra words around the phrase: its best span of the same length, +-1
        for width in {max(1, n - 1), n, n + 1}:
            for i in range(len(words) - width + 1):
                piece = "".join(words[i:i + width])
                span = max(span, fuzz.ratio(piece, form.replace(" ", "")) / 100 * 0.95)
    return max(whole, span)


def _phrase_readings(grammar: Grammar, text: str, spoken: dict[str, str] | None) -> list[Reading]:
    said = normalize(text)
    if not said:
        return []
    forms = dict(spoken or {})
    for p in grammar.all_phrases:
        forms.setdefault(normalize(p), p)
    best: dict[str, float] = {}
    for form, phrase in forms.items():
        if not form:
            continue
        s = _similarity(said, form)
        if s >= PHRASE_FLOOR and s > best.get(phrase, 0.0):
            best[phrase] = s
    return [Reading(p, round(s, 4)) for p, s in sorted(best.items(), key=lambda kv: -kv[1])]


def map_transcript(grammar: Grammar, text: str, spoken: dict[str, str] | None = None,
                   limit: int = 5) -> list[Reading]:
    """The grammar's readings of a transcript, best first (empty: the grammar does not cover
    it). `spoken` maps an engine's written form of a phrase back to the phrase as written."""
    readings = _phrase_readings(grammar, text, spoken) if grammar.all_phrases else []
    if grammar.builtin == "digits":
        readings += _digit_readings(grammar, text)
    readings.sort(key=lambda r: -r.score)
    return readings[:limit]
