"""Recognising an IVR's own prompts in the audio of a test call (`ivr call`).

Prompts are synthetic speech (espeak-ng) that went through G.711. Free recognition of that audio
is poor and a free word loop is slow, but a JSGF grammar whose alternatives are the whole prompt
sentences the flows can say decodes it exactly and quickly. So:

1. `segment()` cuts received audio into stretches of speech by frame energy;
2. `PromptGrammar` (ivr.speech.prompt_grammar) turns the prompt catalogue (ivr/flow/catalog.py)
   into a JSGF grammar `( <p0> | <p1> | ... )+` (several prompts back to back in one stretch
   decode as a sequence); template parts (`{{ x | say_currency }}`) become number grammars;
3. `PromptRecognizer.recognize()` decodes a stretch with PocketSphinx and splits the words back
   into prompts, each with its start time.

Without a catalogue `ivr call` transcribes openly instead (ivr.speech.transcribe, ivr.speech.hear).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ivr.lang.spoken import SLOT, spoken_text
from ivr.speech.audio import resample
from ivr.speech.prompt_grammar import Pattern, PromptGrammar, build_grammar, split_prompts

log = logging.getLogger(__name__)

ASR_RATE = 16000
FRAME_MS = 20


# --- segmentation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    start: int
    """first sample"""
    end: int
    """one past the last sample"""


def frame_levels(samples: np.ndarray, rate: int) -> np.ndarray:
    """RMS level of each 20 ms frame."""
    n = rate * FRAME_MS // 1000
    usable = len(samples) // n * n
    if not usable:
        return np.zeros(0)
    frames = samples[:usable].astype(np.float64).reshape(-1, n)
    return np.asarray(np.sqrt((frames ** 2).mean(axis=1)))


def segment(samples: np.ndarray, rate: int, *, threshold: float = 60.0, gap_ms: int = 550,
            min_ms: int = 120, lead_ms: int = 60, pad_ms: int = 400) -> list[Segment]:
    """Stretches of speech: frames over `threshold` RMS, joined across pauses under `gap_ms`.

    espeak-ng pauses ~300-400 ms between sentences of one prompt, so one prompt is one segment;
    prompts played back to back may share a segment (the grammar decodes them as a sequence).
    """
    levels = frame_levels(samples, rate)
    n = rate * FRAME_MS // 1000
    active = np.flatnonzero(levels > threshold)
    out: list[Segment] = []
    if not len(active):
        return out
    gap = gap_ms // FRAME_MS
    start = prev = int(active[0])
    for idx in (int(i) for i in active[1:]):
        if idx - prev > gap:
            out.append(Segment(start, prev + 1))
            start = idx
        prev = idx
    out.append(Segment(start, prev + 1))
    lead, pad = lead_ms // FRAME_MS, pad_ms // FRAME_MS
    total = len(levels)
    return [Segment(max(0, s.start - lead) * n, min(total, s.end + pad) * n) for s in out
            if (s.end - s.start) * FRAME_MS >= min_ms]


# --- grammar ----------------------------------------------------------------------------------

# --- recognition ------------------------------------------------------------------------------

@dataclass
class Heard:
    """One prompt heard: start in ms (relative to the audio given), recognised text."""

    at_ms: int
    text: str
    match: str | None = None
    """the catalogue prompt it matched (template as written), if any"""
    end_ms: int = 0
    heard_by: str = "catalogue"
    """catalogue (matched against the caller's flows) or asr (transcribed openly)"""
    confidence: float | None = None

    def as_json(self, offset_ms: int = 0) -> dict[str, Any]:
        doc: dict[str, Any] = {"at_ms": self.at_ms + offset_ms, "end_ms": self.end_ms + offset_ms,
                               "text": self.text, "heard_by": self.heard_by,
                               "confidence": self.confidence}
        if self.match is not None:
            doc["match"] = self.match
        return doc


DYNAMIC_MAX_S = 5.0
"""Number grammars are slow on long audio; longer stretches only try the static prompts."""
BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80, "maxhmmpf": -1, "cmn": "batch",
         "bestpath": False}
"""Wide beams: with the defaults a catalogue of ~40 prompts loses the right path on G.711 audio."""


class PromptRecognizer:
    """PocketSphinx constrained to a prompt catalogue (or its default LM without one).

    Per stretch of speech: decode against the static prompts; if the words are not exactly one
    prompt, against the prompts with template parts; if still not, split the stretch at its
    longest pause and recognise both halves (back-to-back prompts).
    """

    def __init__(self, catalogue: Sequence[str] | None, vocabulary: Iterable[str] = ()) -> None:
        from pocketsphinx import Decoder

        self.grammar: PromptGrammar | None = None
        if catalogue:
            self.decoder = Decoder(lm=None, loglevel="FATAL", **BEAMS)
            self.grammar = build_grammar(catalogue, self.decoder.lookup_word,
                                         add_word=self._add_word, vocabulary=vocabulary)
            self.searches = []
            if any(not any(t.startswith(SLOT) for t in p.tokens) for p in self.grammar.patterns):
                self.decoder.add_jsgf_string("static", self.grammar.jsgf)
                self.searches.append("static")
            if self.grammar.jsgf_dynamic:
                self.decoder.add_jsgf_string("dynamic", self.grammar.jsgf_dynamic)
                self.searches.append("dynamic")
        else:
            self.decoder = Decoder(loglevel="FATAL")
            self.searches = []

    def _add_word(self, word: str, phones: str) -> None:
        self.decoder.add_word(word, phones, True)

    @property
    def mode(self) -> str:
        return "catalogue" if self.grammar is not None else "default-lm"

    def decode(self, samples: np.ndarray, rate: int, search: str | None = None
               ) -> list[tuple[str, int, int]]:
        """Words with start/end in ms (relative to `samples`)."""
        pcm = resample(samples, rate, ASR_RATE) if rate != ASR_RATE else samples.astype(np.int16)
        # the grammar's final state needs trailing silence: a stretch cut right after the last
        # word often decodes to nothing (leading zeros, on the other hand, hurt)
        pcm = np.concatenate([pcm, np.zeros(ASR_RATE * 3 // 10, dtype=np.int16)])
        d = self.decoder
        if search is not None:
            d.activate_search(search)
        d.start_utt()
        d.process_raw(pcm.astype("<i2").tobytes(), full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            return []
        out = []
        for seg in d.seg():
            word = re.sub(r"\(\d+\)$", "", seg.word)
            if word.startswith(("<", "[", "+")):
                continue
            out.append((word, seg.start_frame * 10, (seg.end_frame + 1) * 10))
        return out

    def _whole(self, words: list[tuple[str, int, int]]) -> Pattern | None:
        """The pattern the words are exactly, if any."""
        assert self.grammar is not None
        parts = split_prompts([w for w, _, _ in words], self.grammar.patterns,
                              self.grammar.slot_words)
        if len(parts) == 1 and parts[0][2] is not None:
            return parts[0][2]
        return None

    def recognize(self, samples: np.ndarray, rate: int, offset_ms: int = 0,
                  depth: int = 0) -> list[Heard]:
        """Prompts in one stretch of speech, each with its start time (+ offset_ms)."""
        if self.grammar is None:
            words = self.decode(samples, rate)
            if not words:
                return []
            return [Heard(offset_ms + words[0][1], " ".join(w for w, _, _ in words),
                          end_ms=offset_ms + words[-1][2])]
        best: list[tuple[str, int, int]] = []
        seconds = len(samples) / rate
        for search in self.searches:
            if search == "dynamic" and seconds > DYNAMIC_MAX_S:
                continue
            words = self.decode(samples, rate, search)
            pattern = self._whole(words) if words else None
            if pattern is not None:
                return [Heard(offset_ms + words[0][1], " ".join(w for w, _, _ in words),
                              pattern.text, end_ms=offset_ms + words[-1][2])]
            best = best or words
        cut = _longest_pause(samples, rate, min_ms=300) if depth < 2 else None
        if cut is not None:
            left = self.recognize(samples[:cut], rate, offset_ms, depth + 1)
            right = self.recognize(samples[cut:], rate, offset_ms + cut * 1000 // rate, depth + 1)
            if any(h.match for h in left + right):
                return left + right
        if not best:
            return []
        return [Heard(offset_ms + best[0][1], " ".join(w for w, _, _ in best),
                      end_ms=offset_ms + best[-1][2])]

    def recognize_all(self, samples: np.ndarray, rate: int) -> list[Heard]:
        """Segment then recognise a whole recording."""
        heard: list[Heard] = []
        for seg in segment(samples, rate):
            heard += self.recognize(samples[seg.start:seg.end], rate,
                                    offset_ms=seg.start * 1000 // rate)
        return heard


def _longest_pause(samples: np.ndarray, rate: int, threshold: float = 60.0,
                   min_ms: int = 200) -> int | None:
    """Sample index in the middle of the longest quiet run inside the audio (not at its ends)."""
    levels = frame_levels(samples, rate)
    quiet = levels <= threshold
    n = rate * FRAME_MS // 1000
    best: tuple[int, int] | None = None
    i = 0
    speech_seen = False
    while i < len(quiet):
        if not quiet[i]:
            speech_seen = True
            i += 1
            continue
        j = i
        while j < len(quiet) and quiet[j]:
            j += 1
        if speech_seen and j < len(quiet) and (best is None or j - i > best[1] - best[0]):
            best = (i, j)
        i = j
    if best is None or (best[1] - best[0]) * FRAME_MS < min_ms:
        return None
    return (best[0] + best[1]) // 2 * n


def expect_matches(expected: str, heard_text: str) -> bool:
    """`expect_prompt`: case-insensitive substring on normalised words. Text in another script
    (Chinese, Korean: `spoken_text` keeps English letters only) compares as written, without
    spaces and punctuation, as `ivr test` offline does."""
    if any(ord(ch) >= LATIN_END and ch.isalpha() for ch in expected):
        plain = _plain(expected)
        return bool(plain) and plain in _plain(heard_text)
    needle = spoken_text(expected)
    hay = spoken_text(heard_text)
    return bool(needle) and needle in hay


LATIN_END = 0x250
"""Letters below this code point are Latin (with accents): words `spoken_text` can say."""


def _plain(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())
