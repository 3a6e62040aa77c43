"""Running a recognizer over audio already recorded, and building engines from the config.

`recognize_pcm` is what `audio:` steps (`ivr simulate`, `ivr test`) need: cut the utterance with
the VAD, decode it under a grammar, and bound the time it may take. It answers in the engines'
own terms: ("noinput", None) when no speech starts within the timeout; ("speech", None) for speech
the grammar does not cover, an engine error, or a decode slower than `decode_timeout`; otherwise
("speech", result). The flow layer maps that to its inputs (ivr.flow.audio_input). `load_pcm`
reads any WAV (G.711 too) at the VAD's rate.

`load_engine(settings)` builds the configured engine once per process and says whether speech is
ready; `engine_from_config(config)` is its `Engine | None` shorthand.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import struct
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivr.config import AsrSettings, EngineConfig
from ivr.speech.asr.base import Engine, EngineError, Grammar, Recognizer, Result
from ivr.speech.asr.probe import probe_pocketsphinx
from ivr.speech.asr.vad import Endpointer
from ivr.speech.audio import read_wav, resample

log = logging.getLogger(__name__)

RATE = 16000
FRAME_MS = 20


@dataclass(frozen=True)
class AsrReadiness:
    engine: Engine | None
    ready: bool
    message: str


_engines: dict[tuple[str, str | None], AsrReadiness] = {}
_lock = threading.Lock()


def _build(settings: AsrSettings) -> AsrReadiness:
    from ivr.speech.asr.pocketsphinx import PocketSphinxEngine

    kind, model = settings.engine, settings.model
    if kind == "none":
        return AsrReadiness(None, False, "speech recognition disabled (speech.asr.engine: none)")
    try:
        if kind == "vosk":
            from ivr.speech.asr.vosk import VoskEngine, packaged_model

            if not model:
                engine: Engine = PocketSphinxEngine()
                return AsrReadiness(engine, True, "speech ready: no vosk model configured "
                                    "(speech.asr.model), using PocketSphinx's bundled en-US model")
            path: Path | None = Path(model)
            if model.startswith("lang:"):
                path = packaged_model(model[5:])
                if path is None:
                    return AsrReadiness(None, False, f"speech not ready: no installed package "
                                        f"carries a vosk model for {model[5:]!r}")
            assert path is not None
            engine = VoskEngine(path)
        elif kind == "whisper":
            return _whisper(model)
        else:
            if model and Path(model, "mdef").is_file():
                probe_pocketsphinx(model)  # a corrupt model would exit this process
            engine = PocketSphinxEngine(model)
    except EngineError as exc:
        return AsrReadiness(None, False, f"speech not ready: {exc}; input nodes use DTMF only")
    except Exception as exc:  # a broken engine must not take the worker down
        log.exception("ASR engine failed to load")
        return AsrReadiness(None, False, f"speech not ready: {kind} failed to load ({exc}); "
                            "input nodes use DTMF only")
    return AsrReadiness(engine, True, f"speech ready: {engine.describe()}")


def _whisper(model: str | None) -> AsrReadiness:
    """Whisper from `model` (or the packaged tiny.en); with faster-whisper or the packaged model
    missing and no model configured, PocketSphinx (speech stays on, less accurate)."""
    from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
    from ivr.speech.asr.whisper import WhisperEngine, whisper_available

    if not model:
        missing = whisper_available()
        if missing:
            engine: Engine = PocketSphinxEngine()
            return AsrReadiness(engine, True, f"speech ready: {missing}, using PocketSphinx's "
                                "bundled en-US model (pip install 'ivr[whisper]' for Whisper)")
    engine = WhisperEngine(model, workers=os.cpu_count() or 2)
    return AsrReadiness(engine, True, f"speech ready: {engine.describe()}")


class LanguageRouter(Engine):
    """The default engine, and another one per flow language (`speech.asr.languages`): a
    recognizer comes from the engine of its grammar's language."""

    def __init__(self, default: Engine, by_language: dict[str, Engine]) -> None:
        self.default = default
        self.by_language = {k.lower(): v for k, v in by_language.items()}
        self.name = default.name
        self.sample_rate = default.sample_rate

    def engine_for(self, language: str) -> Engine:
        lang = language.lower()
        return self.by_language.get(lang) or self.by_language.get(lang.split("-")[0]) \
            or self.default

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        return self.engine_for(grammar.language).new_recognizer(grammar, sample_rate)

    def describe(self) -> str:
        extra = ", ".join(f"{lang}: {e.describe()}" for lang, e in self.by_language.items())
        return f"{self.default.describe()}; {extra}"

    def close(self) -> None:
        for engine in (self.default, *self.by_language.values()):
            engine.close()


def load_model(engine: str, model: str | None) -> AsrReadiness:
    """One model, loaded once per process (later calls share it)."""
    key = (engine, model)
    with _lock:
        got = _engines.get(key)
        if got is None:
            got = _engines[key] = _build(AsrSettings(engine=engine, model=model))
    return got


def in_processes(got: AsrReadiness, engine: str, model: str | None,
                 processes: int | None) -> AsrReadiness:
    """A loaded PocketSphinx model moved to `processes` decoder processes (None: one per core;
    0: left here). PocketSphinx holds the GIL for the whole of a decode, so in this process it
    would stall every other thread (ivr.speech.asr.procs); other engines release it."""
    from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
    from ivr.speech.asr.procs import ProcessEngine

    if processes == 0 or not isinstance(got.engine, PocketSphinxEngine):
        return got
    try:
        moved = ProcessEngine(engine, model, processes)
    except EngineError as exc:
        return AsrReadiness(None, False, f"speech not ready: {exc}; input nodes use DTMF only")
    with _lock:  # the children decode; this process's copy of the model can go
        if _engines.get((engine, model)) is got:
            del _engines[(engine, model)]
    return AsrReadiness(moved, True, f"speech ready: {moved.describe()}")


def shared_models(settings: AsrSettings) -> list[tuple[str, str | None]]:
    """The (engine, model) pairs the recognition service loads instead of each worker.

    By default (`shared` unset) the vosk and Whisper models: a vosk model costs about 0.5 GB of
    memory, so a copy per worker (four calls each) would not fit a box's worth of workers; a
    Whisper model about 130 MB, and its decodes (tens of milliseconds of a core each) are better
    queued per core in one place than run in every worker next to its SIP and RTP. PocketSphinx's en-US model
    (about 30 MB) stays in the workers, which saves a round trip per utterance; `shared: true`
    moves every model to the service, `shared: false` none.
    """
    if settings.engine == "none" or settings.shared is False:
        return []
    pairs = [(settings.engine, settings.model),
             *((sub.engine, sub.model) for sub in settings.languages.values())]
    out: list[tuple[str, str | None]] = []
    for engine, model in pairs:
        if engine == "vosk" and not model:
            engine = "pocketsphinx"  # what an unconfigured vosk falls back to (see _build)
        if (engine, model) not in out and (settings.shared or engine in ("vosk", "whisper")):
            out.append((engine, model))
    return out


def _remote(service: Path, engine: str, model: str | None, wait: float) -> AsrReadiness:
    """A model served by the recognition service; not ready when the service says the model is
    broken or cannot be reached within `wait` seconds (it may be restarting)."""
    from ivr.speech.asr.remote import RemoteEngine

    remote = RemoteEngine(service, engine, model)
    deadline = time.monotonic() + wait
    while True:
        try:
            status = remote.status()
            break
        except EngineError as exc:
            if time.monotonic() >= deadline:
                return AsrReadiness(None, False, f"speech not ready: {exc}; input nodes use "
                                    "DTMF only")
            time.sleep(0.2)
    if not status.get("ready"):
        return AsrReadiness(None, False, str(status.get("message", "speech not ready")))
    return AsrReadiness(remote, True, f"speech ready: {remote.describe()}")


def load_engine(settings: AsrSettings, service: Path | None = None, *,
                wait: float = 10.0, processes: bool = False) -> AsrReadiness:
    """The configured engine(s). With `service` (the recognition service's socket) the shared
    models are reached there and only the others load here; with `processes` (a worker) a
    PocketSphinx model that loads here decodes in `decoder_processes` child processes.

    Speech is ready only when every configured engine is: a language left without its engine
    would otherwise be recognised by a model of another language.
    """
    shared = set(shared_models(settings)) if service is not None else set()

    def one(engine: str, model: str | None) -> AsrReadiness:
        probe = ("pocketsphinx" if engine == "vosk" and not model else engine, model)
        if service is not None and probe in shared:
            return _remote(service, *probe, wait)
        got = load_model(engine, model)
        return in_processes(got, engine, model, settings.decoder_processes) if processes \
            else got

    base = one(settings.engine, settings.model)
    if not settings.languages or base.engine is None:
        return base
    engines: dict[str, Engine] = {}
    for lang, sub in settings.languages.items():
        got = one(sub.engine, sub.model)
        if got.engine is None:
            return AsrReadiness(None, False, f"{got.message} (speech.asr.languages.{lang})")
        engines[lang] = got.engine
    router = LanguageRouter(base.engine, engines)
    return AsrReadiness(router, True, f"speech ready: {router.describe()}")


def engine_from_config(config: EngineConfig) -> Engine | None:
    """The engine of `speech.asr`, or None (with the reason logged) when speech is not ready."""
    status = load_engine(config.speech.asr)
    (log.info if status.ready else log.warning)("%s", status.message)
    return status.engine


def decode(engine: Engine, grammar: Grammar, samples_pcm: bytes, rate: int, *,
           timeout: float | None, trailing_silence: float = 0.7,
           max_speech: float = 15.0) -> tuple[str, Result | None]:
    """VAD + recognizer over PCM: ("noinput", None) or ("speech", result-or-None)."""
    ep = Endpointer(rate, frame_ms=FRAME_MS, timeout=timeout, trailing_silence=trailing_silence,
                    max_speech=max_speech)
    rec = engine.new_recognizer(grammar, rate)
    try:
        ep.feed(samples_pcm)
        if ep.started_ms is None:
            return "noinput", None
        rec.accept(ep.take_audio())
        return "speech", rec.finalize()
    finally:
        rec.close()


def recognize_pcm(pcm: bytes, rate: int, grammar: Grammar, engine: Engine, *, timeout: float,
                  trailing_silence: float = 0.7, max_speech: float = 15.0,
                  decode_timeout: float | None = 10.0) -> tuple[str, Result | None]:
    """`decode` that never fails and never hangs: a failing or stalled recognizer is a nomatch
    (16-bit mono PCM at `rate`, a VAD rate)."""
    if grammar.empty:
        return "speech", None

    def work() -> tuple[str, Result | None]:
        return decode(engine, grammar, pcm, rate, timeout=timeout,
                      trailing_silence=trailing_silence, max_speech=max_speech)

    try:
        if decode_timeout is None:
            return work()
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asr")
        try:
            return pool.submit(work).result(timeout=decode_timeout)
        finally:
            pool.shutdown(wait=False)
    except concurrent.futures.TimeoutError:
        log.warning("recognizer took over %.1fs; treated as a nomatch", decode_timeout)
    except Exception:  # a failing recognizer is a nomatch, never a crash
        log.warning("recognizer failed; treated as a nomatch", exc_info=True)
    return "speech", None


def _g711(data: np.ndarray, tag: int) -> np.ndarray:
    """Decode G.711 bytes (tag 7 mu-law, 6 A-law) to int16."""
    if tag == 7:
        u = ~data.astype(np.int32) & 0xFF
        mag = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)
        out = np.where(u & 0x80, 0x84 - mag, mag - 0x84)
    else:
        a = data.astype(np.int32) ^ 0x55
        exp, mant = (a >> 4) & 7, a & 0x0F
        mag = np.where(exp == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << np.maximum(exp - 1, 0))
        out = np.where(a & 0x80, mag, -mag)
    return out.astype(np.int16)


def read_any_wav(path: Path) -> tuple[np.ndarray, int]:
    """`read_wav` plus G.711 (mu-law / A-law) WAV files, as telephony recordings often are."""
    try:
        return read_wav(path)
    except wave.Error:
        raw = path.read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, tag, channels, rate, body = 12, 0, 1, 8000, b""
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        chunk = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", chunk[:8])
        elif cid == b"data":
            body = chunk
        pos += 8 + size + (size & 1)
    if tag not in (6, 7):
        raise ValueError(f"{path}: unsupported WAV format {tag}")
    samples = _g711(np.frombuffer(body, dtype=np.uint8), tag)
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels)
        samples = samples.mean(axis=1).astype(np.int16)
    return samples, rate


def load_pcm(path: str | Path) -> bytes:
    """A WAV file (any rate/width/channels, G.711 too) as 16-bit mono PCM at `RATE`."""
    samples, rate = read_any_wav(Path(path))
    return bytes(resample(samples, rate, RATE).astype("<i2").tobytes())
