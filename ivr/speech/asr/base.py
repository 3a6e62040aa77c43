"""The streaming recognizer interface every ASR engine implements.

An `Engine` loads its model once per worker process; each call gets its own `Recognizer`
(`new_recognizer(grammar, sample_rate)`), fed PCM from the call's media buffer on a decode thread
(never on the event loop). A `Grammar` (ivr.lang.grammars, built by the flow layer from a node's
listen spec) is what the recognizer may hear: the menu's option phrases plus the globals' phrases,
and/or a built-in (`digits`, `number`, `yes_no`) expanded to words. Engines import nothing from
the flow layer.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import soxr

from ivr.lang.grammars import Grammar

__all__ = ["FALLBACK_CONFIDENCE", "Engine", "EngineError", "Grammar", "Recognizer", "Result",
           "StreamResampler", "grammar_kind", "pick_result", "trim_quiet"]
"""`Grammar` is named here too: every engine signature takes one."""


class EngineError(Exception):
    """A model is missing or broken, or the engine cannot serve a grammar."""


@dataclass(frozen=True)
class Result:
    """What a recognizer heard: text in the grammar's words, confidence in [0, 1], n-best."""

    text: str
    confidence: float
    alternatives: tuple[str, ...] = ()
    features: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    """The raw evidence the confidence was calibrated from (for the bench and the logs)."""


def grammar_kind(grammar: Grammar) -> str:
    """How a grammar is scored: `digits`, `yes_no`, or `phrases` (menus, phrase lists)."""
    if grammar.builtin in ("digits", "yes_no"):
        return grammar.builtin
    return "phrases"


def trim_quiet(x: np.ndarray, rate: int, quiet_rms: float, margin_s: float) -> np.ndarray:
    """The sound and `margin_s` of quiet on each side (10 ms frames above `quiet_rms` are
    sound); all-quiet audio stays as it is."""
    n = rate // 100
    frames = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    loud = np.flatnonzero(np.sqrt((frames ** 2).mean(axis=1)) > quiet_rms)
    if loud.size == 0:
        return x
    margin = int(margin_s * rate)
    return x[max(0, loud[0] * n - margin): min(len(x), (loud[-1] + 1) * n + margin)]


FALLBACK_CONFIDENCE = 0.5
"""Confidence of an n-best entry used because the 1-best is not in the grammar: accepted at the
flows' default threshold, rejected by a node asking for more."""


def pick_result(best: str | None, confidence: float, alternatives: list[str]) -> Result | None:
    """The 1-best with its confidence when it fits the grammar, else the first n-best entry that
    does (at FALLBACK_CONFIDENCE), else nothing; the other fitting entries are alternatives."""
    if best is None:
        if not alternatives:
            return None
        best, confidence = alternatives[0], FALLBACK_CONFIDENCE
    return Result(best, confidence, tuple(a for a in alternatives if a != best))


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

    def finalize_partial(self, min_digits: int) -> Result | None:
        """`finalize()` at a pause of a digits collect, whose result matters only once it holds
        `min_digits` digits: an engine may return a shorter digit string unscored (confidence
        0.0) where scoring costs more than searching (PocketSphinx's lattice)."""
        return self.finalize()

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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop what the engine runs besides its model (decoder processes): the worker's stop."""


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

