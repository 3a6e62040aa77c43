"""The streaming recognizer interface every ASR engine implements.

An `Engine` loads its model once per worker process; each call gets its own `Recognizer`
(`new_recognizer(grammar, sample_rate)`), fed PCM from the call's media buffer on a decode thread
(never on the event loop). A `Grammar` comes from the flow's `ListenSpec`: the menu's option phrases
plus the globals' phrases, and/or a built-in (`digits`, `number`, `yes_no`) expanded to words.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr

from ivr.flow.channel import ListenSpec
from ivr.flow.grammar import NO, YES, normalize

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUMBER_WORDS = (
    *DIGIT_WORDS, "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
    "seventeen", "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
    "eighty", "ninety", "hundred", "thousand", "million", "and", "point",
)
WORD_BUILTINS = {"digits": DIGIT_WORDS, "number": NUMBER_WORDS, "currency": NUMBER_WORDS}
"""Built-ins recognised as a loop over words (any sequence)."""
PHRASE_BUILTINS = {"yes_no": (*YES, *NO)}
"""Built-ins recognised as one phrase out of a list."""


class EngineError(Exception):
    """A model is missing or broken, or the engine cannot serve a grammar."""


@dataclass(frozen=True)
class Result:
    """What a recognizer heard: text in the grammar's words, confidence in [0, 1], n-best."""

    text: str
    confidence: float
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grammar:
    """What a recognizer may hear: phrases (options + globals) and/or one built-in grammar."""

    phrases: tuple[str, ...] = ()
    builtin: str | None = None
    language: str = "en-US"
    min_words: int = 1
    max_words: int = 0
    """Length bounds of a `digits` utterance (0: unbounded), from the collect's digits{min,max}."""

    @classmethod
    def from_spec(cls, spec: ListenSpec) -> Grammar:
        builtin = spec.builtin if spec.builtin in (*WORD_BUILTINS, *PHRASE_BUILTINS) else None
        if spec.builtin and builtin is None:
            log.warning("built-in grammar %r has no speech words; phrases only", spec.builtin)
        lo, hi = 1, 0
        if builtin == "digits" and spec.max_digits > 1:
            lo, hi = max(1, spec.min_digits), spec.max_digits
        return cls(tuple(dict.fromkeys(p for p in spec.phrases if normalize(p))), builtin,
                   spec.language, lo, hi)

    @property
    def word_loop(self) -> tuple[str, ...]:
        """Words of a looping built-in (digits, number), empty otherwise."""
        return WORD_BUILTINS.get(self.builtin or "", ())

    @property
    def all_phrases(self) -> tuple[str, ...]:
        """Phrases plus the phrase list of a phrase built-in (yes_no)."""
        extra = PHRASE_BUILTINS.get(self.builtin or "", ())
        return tuple(dict.fromkeys((*self.phrases, *extra)))

    @property
    def empty(self) -> bool:
        return not self.all_phrases and not self.word_loop

    def key(self) -> str:
        return repr((self.phrases, self.builtin, self.language, self.min_words, self.max_words))

    def match(self, text: str, spoken: dict[str, str] | None = None) -> str | None:
        """The grammar text for a decoded string: the phrase as the flow wrote it (longest phrase
        contained as whole words), or the words of a looping built-in; None when nothing fits.

        `spoken` maps an engine's normalised form of a phrase (e.g. digits spelled out) back to
        the phrase as written.
        """
        said = normalize(text)
        if not said:
            return None
        forms = dict(spoken or {})
        for p in self.all_phrases:
            forms.setdefault(normalize(p), p)
        best: str | None = None
        for form in forms:
            if form and f" {form} " in f" {said} " and (best is None or len(form) > len(best)):
                best = form
        if best is not None:
            return forms[best]
        loop = set(self.word_loop)
        if loop and all(w in loop for w in said.split()):
            return said
        return None


class Recognizer(abc.ABC):
    """One utterance at a time: accept PCM, finalize into a result, reset for the next one.

    Not thread-safe: one thread (the call's decode thread) drives it.
    """

    @abc.abstractmethod
    def accept(self, pcm: bytes) -> None:
        """Feed 16-bit little-endian mono PCM at the recognizer's input rate."""

    @abc.abstractmethod
    def finalize(self) -> Result | None:
        """End the utterance; the best result, or None when nothing in the grammar was heard."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Drop the current utterance and start a new one."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources (return a pooled decoder)."""


class Engine(abc.ABC):
    """A model loaded once per process; hands out one recognizer per call."""

    name: str = "engine"
    sample_rate: int = 16000
    """The model's rate; recognizers resample other input rates to it."""

    @abc.abstractmethod
    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        """A recognizer constrained to `grammar`, fed PCM at `sample_rate`."""

    def describe(self) -> str:
        return self.name


class StreamResampler:
    """int16 PCM from a call rate to a model rate, chunk by chunk (soxr keeps filter state)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = (soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16", quality="HQ")
                        if rate_in != rate_out else None)

    def __call__(self, pcm: bytes, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        out = self._stream.resample_chunk(x, last=last)
        return np.asarray(out, dtype="<i2").tobytes()

    def reset(self) -> None:
        if self._stream is not None:
            self._stream = soxr.ResampleStream(self.rate_in, self.rate_out, 1, dtype="int16",
                                               quality="HQ")


def dedupe(texts: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for t in texts if t))
