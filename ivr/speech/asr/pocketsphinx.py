"""PocketSphinx engine: the PyPI wheel's bundled en-US model, one JSGF search per grammar.

- Input: 16 kHz int16 PCM; other call rates (8 kHz) are resampled with soxr.
- Grammar: JSGF `public <g> = phrase | phrase | <loop>` where phrases are the flow's phrases as
  the dictionary spells them (digits written out, ivr.lang.spoken) and `<loop>` is `<digits>`
  (digit words, one or more) or `<number>` (number words) for the built-ins, from the language's
  JSGF rules (ivr.lang.grammars). A word the dictionary lacks gets an
  espeak-ng-derived pronunciation (ivr.speech.pronounce); if that fails the
  phrase is dropped with a warning, and a grammar left empty raises EngineError.
- Confidence: the calibrated probability that the result is right (ivr.speech.asr.calibration)
  from the lattice posterior of the best path (`Hypothesis.prob`) taken per word (a 4-digit
  string's posterior is a product over words: an exactly decoded real-voice code measured
  0.007), the share of the n-best list that reads the same, and whether the 1-best ended inside
  a phrase (then the first n-best entry that is a whole phrase is the result).
- Alternatives: distinct whole-phrase entries of the n-best list (PocketSphinx `nbest()`).
- Digits: "oh" is zero, and a bounded digit grammar (up to DOUBLE_MAX digits) also takes
  "double four" as two digits.
- Decoding: the utterance is buffered (at most 20 s) and decoded in one pass at `finalize()`
  (`full_utt`: batch cepstral mean normalisation, clearly more accurate than live CMN on short
  commands); the VAD bounds utterances, and decoding runs at ~0.02 x real time, so finalize costs
  tens of milliseconds.
- Silence around the words: the endpointer hands over 300 ms of pre-roll and 700 ms of trailing
  silence, and each alternative silence/filler path takes posterior mass: a correctly decoded
  8-digit string measured 0.16 over SIP against 0.96 with the quiet trimmed to 150 ms each side.
  `finalize()` trims to MARGIN_S of quiet around the sound before decoding.
- Digital silence (exact zeros, e.g. padding) breaks PocketSphinx's cepstral mean normalisation;
  a +-10 LSB dither is added to the input (measured: 16/72 -> 42/72 phrases on padded audio).
- Model sharing: a `Decoder` owns its acoustic model, and the Python API cannot share one between
  decoders, so the engine keeps a pool: `new_recognizer` borrows a decoder (creating one only when
  every pooled decoder is busy) and `close()` returns it. A worker with 4 calls holds at most 4.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ivr.lang.spoken import spoken_words
from ivr.speech.asr.base import (
    Engine,
    EngineError,
    Grammar,
    Recognizer,
    Result,
    StreamResampler,
    grammar_kind,
    pick_result,
    trim_quiet,
)
from ivr.speech.asr.calibration import calibrate
from ivr.speech.asr.expect import digits_heard
from ivr.speech.pronounce import espeak_pronunciation

log = logging.getLogger(__name__)

MARGIN_S = 0.1
QUIET_RMS = 300.0
"""10 ms frames under this RMS (about -40 dBFS) are quiet, for trimming."""
DITHER = 10
MAX_UTTERANCE_BYTES = 16000 * 2 * 20
"""Audio kept for one utterance (20 s at 16 kHz); the VAD's max_speech cuts well before."""
_ALT = re.compile(r"\(\d+\)$")
N_BEST = 20
WORD_BEAM = 1e-26
"""Word-exit beam (PocketSphinx's default is 7e-29). A grammar search's lattice keeps every word
exit inside the beam, and building it (and the posterior the confidence comes from) was most of
a decode: a real-voice 4-digit code took 0.23 s p50 / 0.71 s max under its 4-digit grammar and
0.70 s / 3.2 s under 1..4 digits (a pause decode). At 1e-26: 0.14 / 0.34 s and 0.47 / 1.2 s,
the same words on 20 real-voice codes and on tests/unit/test_asr_accuracy.py's 8-digit strings
(38/48 digits); a narrower 1e-20 halved it again but lost 7 of those 48 digits."""
DOUBLE_MAX = 8
"""Bounded digit grammars up to this length also take "double" (exact counts)."""


def _exact_digit_rules(hi: int) -> list[str]:
    """JSGF rules <len1>..<len{hi}>: exactly k digits, "double four" counting as two ("triple"
    is left out: it doubled the search again for a rare form)."""
    rules = []
    for k in range(1, hi + 1):
        alts = [f"<digit> <len{k - 1}>" if k > 1 else "<digit>"]
        if k >= 2:
            alts.append(f"double <digit> <len{k - 2}>" if k > 2 else "double <digit>")
        rules.append(f"<len{k}> = {' | '.join(alts)} ;")
    return rules


def _jsgf_word(word: str) -> str:
    """A dictionary word as a JSGF token: bare (PocketSphinx 5 rejects a quoted "that's", so
    every yes_no grammar failed to load)."""
    return word


class _CompiledGrammar:
    def __init__(self, name: str, jsgf: str, spoken: dict[str, str]) -> None:
        self.name, self.jsgf, self.spoken = name, jsgf, spoken


def build_jsgf(grammar: Grammar, lookup: Any, add_word: Any) -> _CompiledGrammar:
    """The JSGF text for a grammar and the map from decoded words back to the flow's phrases."""
    spoken: dict[str, str] = {}
    alts: list[str] = []
    missing: dict[str, bool] = {}

    def known(word: str) -> bool:
        if word not in missing:
            ok = lookup(word) is not None
            if not ok:
                phones = espeak_pronunciation(word)
                if phones:
                    try:
                        add_word(word, phones)
                        ok = True
                    except Exception:  # a bad pronunciation drops the phrase
                        ok = False
            missing[word] = ok
        return missing[word]

    for phrase in grammar.all_phrases:
        words = spoken_words(phrase)
        if not words:
            continue
        if not all(known(w) for w in words):
            log.warning("phrase %r has words PocketSphinx cannot pronounce; dropped", phrase)
            continue
        form = " ".join(words)
        if form not in spoken:
            spoken[form] = phrase
            alts.append(" ".join(_jsgf_word(w) for w in words))
    extra: list[str] = []
    if grammar.builtin == "digits" and grammar.max_words:
        lo, hi = grammar.min_words, max(grammar.min_words, grammar.max_words)
        if hi <= DOUBLE_MAX:
            extra = _exact_digit_rules(hi)
            alts.append(" | ".join(f"<len{k}>" for k in range(lo, hi + 1)))
        else:
            alts.append(" ".join(["<digit>"] * lo + ["[<digit>]"] * (hi - lo)))
    elif grammar.builtin == "digits":
        alts.append("<digits>")
    elif grammar.builtin in ("number", "currency"):
        alts.append("<number>")
    if not alts:
        raise EngineError("the grammar has no phrase PocketSphinx can recognise")
    name = "g" + hashlib.sha1(grammar.key().encode()).hexdigest()[:12]
    jsgf = "\n".join(["#JSGF V1.0;", f"grammar {name};",
                      f"public <{name}> = {' | '.join(alts)} ;", *extra,
                      grammar.jsgf_rules.rstrip()]) + "\n"
    return _CompiledGrammar(name, jsgf, spoken)


class PocketSphinxRecognizer(Recognizer):
    def __init__(self, engine: PocketSphinxEngine, decoder: Any, grammar: Grammar,
                 compiled: _CompiledGrammar, sample_rate: int) -> None:
        self._engine = engine
        self._decoder: Any = decoder
        self.grammar = grammar
        self._compiled = compiled
        self._resample = StreamResampler(sample_rate, engine.sample_rate)
        self._rng = np.random.default_rng(0)
        self._started = False
        self._buffer: list[bytes] = []
        self._buffered = 0

    def accept(self, pcm: bytes) -> None:
        if self._decoder is None:
            raise EngineError("recognizer is closed")
        data = self._resample(pcm)
        if self._buffered + len(data) > MAX_UTTERANCE_BYTES:
            data = data[: max(0, MAX_UTTERANCE_BYTES - self._buffered)]
        self._buffer.append(data)
        self._buffered += len(data)

    def finalize(self) -> Result | None:
        return self._finalize(0)

    def finalize_partial(self, min_digits: int) -> Result | None:
        return self._finalize(min_digits)

    def _finalize(self, min_digits: int) -> Result | None:
        if self._decoder is None:
            raise EngineError("recognizer is closed")
        self.accept(b"")
        self._buffer.append(self._resample(b"", last=True))
        pcm = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        self._resample.reset()
        if not pcm:
            return None
        x = trim_quiet(np.frombuffer(pcm, dtype="<i2"), self._engine.sample_rate, QUIET_RMS,
                       MARGIN_S).astype(np.int32)
        x += self._rng.integers(-DITHER, DITHER + 1, len(x), dtype=np.int32)
        d = self._decoder
        d.activate_search(self._compiled.name)
        d.reinit_feat()  # no front-end state from this pooled decoder's last call
        d.start_utt()
        self._started = True
        d.process_raw(np.clip(x, -32768, 32767).astype("<i2").tobytes(), False, True)
        short = self._short_of(min_digits) if min_digits else None
        d.end_utt()
        self._started = False
        if short is not None:
            return short
        hyp = d.hyp()
        if hyp is None or not hyp.hypstr:
            return None
        spoken = self._compiled.spoken
        alternatives: list[str] = []
        votes: list[str | None] = []
        try:
            for i, entry in enumerate(d.nbest()):
                if i >= N_BEST:
                    break
                text = getattr(entry, "hypstr", None)
                if text:
                    m = self.grammar.match(_ALT.sub("", text), spoken)
                    votes.append(m)
                    if m is not None and m not in alternatives:
                        alternatives.append(m)
        except Exception:  # n-best is a nicety; the 1-best stands alone
            log.debug("n-best failed", exc_info=True)
        best = self.grammar.match(hyp.hypstr, spoken)
        picked = pick_result(best, 0.0, alternatives)
        if picked is None:
            return None
        posterior = max(1e-6, float(hyp.prob))
        words = max(1, len(picked.text.split()))
        features = {
            "posterior": posterior,
            "word_posterior": posterior ** (1.0 / words),
            "agreement": (sum(v == picked.text for v in votes) / len(votes)) if votes else 1.0,
            "fallback": 0.0 if best is not None else 1.0,
            "words": float(words),
        }
        confidence = calibrate(self._engine.name, grammar_kind(self.grammar), features)
        return Result(picked.text, confidence, picked.alternatives, features=features)

    def _short_of(self, min_digits: int) -> Result | None:
        """The digits so far, unscored, when the search's best path (a backtrace, tens of
        milliseconds) holds fewer than `min_digits`; None to score the decode. Scoring builds the
        lattice and its posterior, most of a pause decode of a digit string (0.2-0.7 s against
        ~0.05 s of search for a real-voice code); measured on the real-voice codes, the
        backtrace counts a whole code's digits as often as the lattice's best path (80 of 82)."""
        words = [_ALT.sub("", s.word) for s in self._decoder.seg()]
        text = " ".join(w for w in words if w and not w.startswith(("<", "[", "+", "(")))
        heard = digits_heard(self.grammar, text) if text else 0
        if heard is None or heard >= min_digits:
            return None
        text = (self.grammar.match(text, self._compiled.spoken) or text) if text else ""
        return Result(text, 0.0, features={"unscored": 1.0, "words": float(len(text.split()))})

    def reset(self) -> None:
        if self._started:
            self._decoder.end_utt()
            self._started = False
        self._buffer, self._buffered = [], 0
        self._resample.reset()

    def close(self) -> None:
        if self._decoder is not None:
            self.reset()
            self._engine._release(self._decoder)
            self._decoder = None


class PocketSphinxEngine(Engine):
    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self, model_dir: str | Path | None = None) -> None:
        try:
            from pocketsphinx import Decoder  # noqa: F401
        except ImportError as exc:
            raise EngineError(f"pocketsphinx is not installed: {exc}") from None
        self._kwargs: dict[str, Any] = {"lm": None, "loglevel": "FATAL", "wbeam": WORD_BEAM}
        if model_dir is not None:
            path = Path(model_dir)
            if not (path / "mdef").is_file():
                raise EngineError(f"{path} is not a PocketSphinx acoustic model (no mdef)")
            self._kwargs["hmm"] = str(path)
        self._lock = threading.Lock()
        self._free: list[Any] = []
        self._searches: dict[int, set[str]] = {}
        self._compiled: dict[str, _CompiledGrammar] = {}
        self.created = 0
        self._release(self._new_decoder())  # load (and check) the model now

    def _new_decoder(self) -> Any:
        from pocketsphinx import Decoder

        try:
            decoder = Decoder(**self._kwargs)
        except Exception as exc:  # a broken model is a readiness problem
            raise EngineError(f"PocketSphinx model failed to load: {exc}") from exc
        self.created += 1
        self._searches[id(decoder)] = set()
        return decoder

    def _release(self, decoder: Any) -> None:
        with self._lock:
            self._free.append(decoder)

    def describe(self) -> str:
        return f"pocketsphinx ({self._kwargs.get('hmm', 'bundled en-US model')})"

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        if grammar.empty:
            raise EngineError("empty grammar")
        with self._lock:
            decoder = self._free.pop() if self._free else None
        if decoder is None:
            decoder = self._new_decoder()
        try:
            key = grammar.key()
            compiled = self._compiled.get(key)
            if compiled is None:
                compiled = build_jsgf(grammar, decoder.lookup_word,
                                      lambda w, p: decoder.add_word(w, p, True))
                self._compiled[key] = compiled
            else:
                for words in compiled.spoken:  # words added to another pooled decoder
                    for w in words.split():
                        if decoder.lookup_word(w) is None:
                            phones = espeak_pronunciation(w)
                            if phones:
                                decoder.add_word(w, phones, True)
            searches = self._searches.setdefault(id(decoder), set())
            if compiled.name not in searches:
                decoder.add_jsgf_string(compiled.name, compiled.jsgf)
                searches.add(compiled.name)
        except Exception:
            self._release(decoder)
            raise
        return PocketSphinxRecognizer(self, decoder, grammar, compiled, sample_rate)
