"""What the grammar expects after what the caller said so far: is the utterance over?

End-of-turn needs the grammar (VoiceXML's complete/incomplete timeouts): "four seven" with a
4-digit collect is not done, however long the caller breathes between digits; "balance" in a
menu where no phrase goes on after "balance" is done the moment the caller stops. A decode of
the utterance so far (at each short pause) is classified here:

- `incomplete`: the grammar needs more (fewer digits than the collect's `min`, or no whole match);
- `complete`: a whole match the grammar could extend (digits between min and max, a phrase that
  begins a longer one, a number);
- `final`: a whole match nothing in the grammar extends (max digits, a phrase no other phrase
  starts with): the turn may end at once.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ivr.lang.grammars import Grammar
from ivr.lang.normalize import normalize
from ivr.lang.numbers import parse_digits

Expectation = Literal["incomplete", "complete", "final"]


BOUNDED_MAX = 8
"""Up to this many digits a pause decode keeps the collect's max (1..max): engines spell that
as exact-length alternatives (PocketSphinx: ivr.speech.asr.pocketsphinx.DOUBLE_MAX); longer
bounds would be optional digits, ten times slower than a loop (2.5 s against 0.25 s for eight)."""


def partial_grammar(grammar: Grammar) -> Grammar:
    """The grammar a pause decode uses: a digit string of 1..max digits (any length when the
    collect has no max, or a long one), so an utterance cut short decodes as the digits said so
    far (a min..max grammar would force `min` digits out of two words and end the turn on a
    guess). Bounded, where it can be: an unbounded loop inserts digits (4 real-voice digits
    came out as six: "two eight two oh nine nine" for "six two nine nine", right 1 time in 20
    against 7 in 20 for 1..4), and each inserted word grows the lattice (1.3 s p50 per decode
    against 0.6 s for 1..4)."""
    if grammar.builtin == "digits" and grammar.min_words > 1:
        bounded = 0 < grammar.max_words <= BOUNDED_MAX
        return dataclasses.replace(grammar, min_words=1,
                                   max_words=grammar.max_words if bounded else 0)
    return grammar


def counts_digits(grammar: Grammar) -> bool:
    """A pause decode under this grammar counts digits no more than the collect may hear (a
    bounded 1..max decode), so an unsure count at or over `min` is not a caller between digits;
    a loop's count is (it inserts digits)."""
    return grammar.builtin == "digits" and partial_grammar(grammar).max_words > 0


def said_double(text: str | None) -> bool:
    """"double four" in a digit string: two digits from one word, the count a pause decode is
    least sure of (at a pause mid-string PocketSphinx read "four one seven" as "double one one
    seven", all four digits of the collect, and the caller's last digit was lost)."""
    return any(w in ("double", "triple") for w in normalize(text or "").split())


def digits_heard(grammar: Grammar, text: str) -> int | None:
    """How many digits `text` is under a digits grammar; None when it is no digit string."""
    if grammar.builtin != "digits":
        return None
    got = parse_digits(text)
    return len(got) if got else None


def expectation(grammar: Grammar, text: str) -> Expectation:
    """Where the utterance `text` (a decode's grammar text) stands in `grammar`."""
    said = normalize(text)
    if not said:
        return "incomplete"
    words = said.split()
    phrases = [normalize(p).split() for p in grammar.all_phrases]
    if words in phrases:
        longer = any(len(p) > len(words) and p[: len(words)] == words for p in phrases)
        return "complete" if longer else "final"
    count = digits_heard(grammar, said)
    if count is not None:
        if count < grammar.min_words:
            return "incomplete"
        if grammar.max_words and count >= grammar.max_words:
            return "final"
        return "complete"
    if grammar.word_loop and all(w in grammar.word_loop for w in words):
        return "complete"  # a number: "two hundred" may go on ("... and five")
    return "incomplete"


def needs_more_digits(grammar: Grammar, text: str | None) -> bool:
    """A digits collect that has not heard `min` digits yet (or cannot tell): a pause here is a
    caller between digits, not the end of the turn."""
    if grammar.builtin != "digits" or grammar.min_words <= 1:
        return False
    count = digits_heard(grammar, text or "")
    return count is None or count < grammar.min_words
