"""What `ivr call` heard: the IVR's audio cut into utterances, each one named by the best means.

1. Static prompts of the caller's catalogue (the flows in its directory) are found by sound
   (ivr.speech.prompt_match): exact on the same TTS, `heard_by: catalogue`.
2. Stretches left over are decoded against the catalogue's template prompts (a JSGF grammar,
   ivr.speech.prompt_asr) when it has any; a whole-prompt match is `heard_by: catalogue` too.
3. Whatever is still not covered is cut into utterances (pauses of a quarter second: the gap
   between sentences and between prompts) and transcribed openly (ivr.speech.transcribe):
   `heard_by: asr` with the engine's confidence. An utterance that yields no words is listed as
   unrecognised, so a call whose audio nobody understood says so instead of reporting nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ivr.speech.prompt_asr import FRAME_MS, Heard, PromptRecognizer, Segment, frame_levels, segment
from ivr.speech.prompt_match import MATCH, find_prompts
from ivr.speech.transcribe import Transcriber

UTTERANCE_GAP_MS = 250
"""Quiet that separates two utterances (espeak-ng: ~320 ms between sentences and prompts)."""
COVERED = 0.5
"""A stretch at least this much inside recognised prompts needs no further decoding."""
SPEECH_LEVEL = 60.0


@dataclass
class Hearing:
    prompts: list[Heard] = field(default_factory=list)
    unrecognised: list[tuple[int, int]] = field(default_factory=list)
    """(start, end) ms of utterances that played but yielded no words"""
    speech_ms: int = 0
    """how much of the audio was speech at all"""

    @property
    def nothing_recognised(self) -> bool:
        """Audio played but not a single prompt came out of it."""
        return self.speech_ms >= 200 and not self.prompts


def utterances(samples: np.ndarray, rate: int) -> list[Segment]:
    """Stretches of speech split at quarter-second pauses, a little context kept either side."""
    return segment(samples, rate, gap_ms=UTTERANCE_GAP_MS, min_ms=100, lead_ms=60, pad_ms=160)


def speech_ms(samples: np.ndarray, rate: int) -> int:
    return int((frame_levels(samples, rate) > SPEECH_LEVEL).sum()) * FRAME_MS


def _covered(lo: int, hi: int, heard: Sequence[Heard]) -> bool:
    inside = sum(max(0, min(hi, h.end_ms) - max(lo, h.at_ms)) for h in heard)
    return inside >= COVERED * (hi - lo)


def hear(samples: np.ndarray, rate: int, static: Sequence[tuple[str, np.ndarray]],
         templates: Sequence[str], transcriber: Transcriber | None) -> Hearing:
    """Name every utterance in `samples` (8 kHz int16): catalogue by sound, catalogue by
    grammar, then open transcription; `static` are rendered prompts, `templates` prompt texts."""
    found = find_prompts(samples, static)
    heard = [Heard(f.at_ms, f.text, f.text, end_ms=f.end_ms, heard_by="catalogue",
                   confidence=round(max(0.0, 1.0 - f.distance / (2 * MATCH)), 2)) for f in found]
    if templates:
        grammar = PromptRecognizer(list(templates))
        for seg in segment(samples, rate):
            lo, hi = seg.start * 1000 // rate, seg.end * 1000 // rate
            if not _covered(lo, hi, heard):
                matched = grammar.recognize(samples[seg.start:seg.end], rate, offset_ms=lo)
                heard += [_as_catalogue(h) for h in matched if h.match is not None]
    out = Hearing(speech_ms=speech_ms(samples, rate))
    for seg in utterances(samples, rate):
        lo, hi = seg.start * 1000 // rate, seg.end * 1000 // rate
        if _covered(lo, hi, heard):
            continue
        got = transcriber.transcribe(samples[seg.start:seg.end], rate) if transcriber else None
        if got is None:
            out.unrecognised.append((lo, hi))
            continue
        heard.append(Heard(lo, got.text, end_ms=hi, heard_by="asr", confidence=got.confidence))
    out.prompts = sorted(heard, key=lambda h: h.at_ms)
    return out


def _as_catalogue(h: Heard) -> Heard:
    h.heard_by = "catalogue"
    return h


def describe(hearing: Hearing, offset_ms: int) -> dict[str, Any]:
    """The JSON keys `ivr call` adds for what it heard (times from the start of the call)."""
    return {
        "prompts": [h.as_json(offset_ms) for h in hearing.prompts],
        "speech_ms": hearing.speech_ms,
        "unrecognised": [{"at_ms": lo + offset_ms, "end_ms": hi + offset_ms}
                         for lo, hi in hearing.unrecognised],
        "nothing_recognised": hearing.nothing_recognised,
    }
