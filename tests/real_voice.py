"""The real-voice corpus: human recordings (not synthetic voices) for the ASR tests and bench.

Built at test time, never committed, from Debian's `asterisk-core-sounds-en-wav` (8 kHz PCM) and
`asterisk-core-sounds-en-g722` (16 kHz G.722), one professional speaker (Allison) recorded word by
word and phrase by phrase:

- `digit`: isolated digits 0-9 and "oh" (digits/N.wav, digits/oh.wav);
- `digits4`: 4-digit codes joined from the isolated digits, trimmed, with natural gaps (100-400
  ms each) or none (a fast caller), some with "oh" for zero;
- `yes_no`: "no" (vm-no) and "yes"-class answers cut out of phrases ("correct", "incorrect");
- `menu`: menu words and short phrases ("call forwarding", "do not disturb", "goodbye" ...), as
  one menu grammar.

Each utterance comes through four channels: `pcm8` (the 8 kHz recording as is), `ulaw` (through
G.711 mu-law), `noise` (line noise: pink noise at 15-25 dB SNR and mains hum, then mu-law) and
`g722` (the 16 kHz wideband recording). A speed perturbation of +-8 % (resampling, as in speech
corpora) varies the one voice. Everything is seeded: the same version builds the same files.

Files go to `~/.cache/ivr/corpus/v<VERSION>-<hash of the spec>/` (or `IVR_CORPUS_DIR`), with a
manifest.json; `build()` returns the utterances and reuses a complete cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr

from ivr.lang.grammars import Grammar, default_confidence, parse_builtin
from ivr.speech.asr.base import Engine
from ivr.speech.asr.service import RATE, decode, load_pcm

VERSION = 1
SOUNDS_DIRS = (Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
               Path("/usr/share/asterisk/sounds/en"))
CHANNELS = ("pcm8", "ulaw", "noise", "g722")
DIGIT_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
               "6": "six", "7": "seven", "8": "eight", "9": "nine"}
MENU = {
    "call forwarding": "call-forwarding",
    "call waiting": "call-waiting",
    "do not disturb": "do-not-disturb",
    "speed dial": "speed-dial",
    "transfer": "pbx-transfer",
    "extension": "extension",
    "telephone number": "telephone-number",
    "password": "vm-password",
    "messages": "vm-messages",
    "playback": "dictate/playback",
    "record": "dictate/record",
    "goodbye": "goodbye",
    "minutes": "minutes",
    "hours": "hours",
    "location": "location",
    "cancelled": "cancelled",
}
"""Menu phrase -> sound file: one menu of sixteen options, each said as recorded."""
YES_NO: dict[str, tuple[str, float, float, str]] = {
    "no-1": ("vm-no", 0.0, 0.0, "no"),
    "no-2": ("conf-noempty", 0.0, 0.4, "no"),
    "no-3": ("dir-nomatch", 0.0, 0.38, "no"),
    "no-4": ("vm-nomore", 0.0, 0.4, "no"),
    "incorrect-2": ("auth-incorrect", 0.665, 1.4, "no"),
    "wrong-1": ("something-terribly-wrong", 1.96, 0.0, "no"),
    "wrong-2": ("tt-somethingwrong", 1.82, 0.0, "no"),
    "correct-1": ("if-correct-press", 0.6, 1.22, "yes"),
    "right-1": ("letters/ascii93", 0.0, 0.55, "yes"),
    "right-2": ("letters/ascii125", 0.0, 0.53, "yes"),
}
"""id -> (sound file, start s, end s (0: the end), truth): answers cut out of phrases at word
boundaries (located once with Whisper's word timings, cut at the energy dip between the words).
The recordings have no "yes": the yes side is "correct" and "right", the no side "no",
"incorrect" and "wrong". ("Login incorrect" is left out: "login" runs into "incorrect" without
a dip, and any cut leaves "...n correct".)"""
LEAD_S, TAIL_S = 0.4, 0.9
"""Quiet before and after each utterance, so the VAD sees an onset and an end, as on a call."""


@dataclass(frozen=True)
class Utterance:
    id: str
    set: str
    """digit | digits4 | yes_no | menu"""
    truth: str
    """What the node should get: digits ("4719"), "yes"/"no", or the menu phrase."""
    said: str
    """The words spoken ("four seven one nine", "oh" for a zero)."""
    channel: str
    path: str
    rate: int


def sounds_dir() -> Path:
    """The installed English core sounds (Debian's asterisk-core-sounds-en-wav)."""
    for d in SOUNDS_DIRS:
        if (d / "digits" / "1.wav").is_file():
            return d
    raise FileNotFoundError("asterisk-core-sounds-en-wav is not installed (apt-get install "
                            "asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722; "
                            "scripts/install-deps.sh does it)")


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64), \
            w.getframerate()


def _read_g722(path: Path) -> tuple[np.ndarray, int]:
    """A raw G.722 file decoded by libavcodec (PyAV, installed with faster-whisper)."""
    import av

    with av.open(str(path), format="g722") as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    return np.concatenate(frames).astype(np.float64), 16000


def load(stem: str, wideband: bool) -> tuple[np.ndarray, int]:
    """A recording by its path under the sounds directory, without extension."""
    base = sounds_dir() / stem
    return _read_g722(base.with_suffix(".g722")) if wideband else _read_wav(base.with_suffix(".wav"))


def trim(x: np.ndarray, rate: int, floor_db: float = 35.0, margin_s: float = 0.03) -> np.ndarray:
    """The word without the recording's silence: 10 ms frames within `floor_db` of the loudest."""
    n = rate // 100
    frames = x[: len(x) // n * n].reshape(-1, n)
    rms = np.sqrt((frames ** 2).mean(axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -floor_db)
    if loud.size == 0:
        return x
    m = int(margin_s * rate)
    return x[max(0, loud[0] * n - m): min(len(x), (loud[-1] + 1) * n + m)]


def perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation (tempo and pitch together): play `factor` times as fast."""
    if abs(factor - 1.0) < 1e-6:
        return x
    return np.asarray(soxr.resample(x, 1.0, 1.0 / factor, quality="HQ"), dtype=np.float64)


def mulaw(x: np.ndarray) -> np.ndarray:
    """Through G.711 mu-law and back (the ITU segment coding, 8 bits a sample)."""
    s = np.clip(np.round(x), -32768, 32767).astype(np.int32)
    sign = np.where(s < 0, 0x80, 0)
    mag = np.minimum(np.abs(s), 32635) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    mant = (mag >> (exp + 3)) & 0x0F
    u = sign | (exp << 4) | mant  # the code before G.711's bit inversion
    mag_out = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)
    return np.where(u & 0x80, 0x84 - mag_out, mag_out - 0x84).astype(np.float64)


def line_noise(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS line noise: pink noise (1/f, by spectral shaping) plus a little 50/60 Hz hum."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    pink = np.fft.irfft(spec, n)
    pink /= np.sqrt((pink ** 2).mean()) + 1e-12
    t = np.arange(n) / rate
    hum_hz = 50.0 if rng.random() < 0.5 else 60.0
    hum = np.sin(2 * np.pi * hum_hz * t) + 0.3 * np.sin(2 * np.pi * 3 * hum_hz * t)
    out = pink + 0.3 * hum
    return np.asarray(out / np.sqrt((out ** 2).mean()), dtype=np.float64)


def _speech_rms(x: np.ndarray, rate: int) -> float:
    n = rate // 100
    frames = x[: len(x) // n * n].reshape(-1, n)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    loud = rms[rms > rms.max() * 0.1]
    return float(np.sqrt((loud ** 2).mean())) if loud.size else 1.0


def channel(x: np.ndarray, rate: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Pad with quiet and pass through a channel: pcm8 / g722 as recorded, ulaw, noise."""
    pad = np.concatenate([np.zeros(int(LEAD_S * rate)), x, np.zeros(int(TAIL_S * rate))])
    pad += rng.normal(0.0, 2.0, len(pad))  # a quiet line is never digital zero
    if kind == "noise":
        snr_db = rng.uniform(15.0, 25.0)
        level = _speech_rms(x, rate) / (10 ** (snr_db / 20))
        pad = pad + level * line_noise(len(pad), rate, rng)
    if kind in ("ulaw", "noise"):
        pad = mulaw(pad)
    return np.clip(np.round(pad), -32768, 32767)


def _write(path: Path, x: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(x, dtype="<i2").tobytes())


@dataclass(frozen=True)
class Spec:
    """What to build; its hash names the cache directory."""

    codes: int = 40
    """4-digit codes, each said with gaps and run together"""
    seed: int = 12
    channels: tuple[str, ...] = CHANNELS

    def key(self) -> str:
        doc = json.dumps([VERSION, asdict(self), MENU, YES_NO], sort_keys=True)
        return f"v{VERSION}-{hashlib.sha1(doc.encode()).hexdigest()[:10]}"


def default_cache() -> Path:
    return Path(os.environ.get("IVR_CORPUS_DIR") or Path.home() / ".cache" / "ivr" / "corpus")


def _digit_stem(d: str, oh: bool) -> str:
    return "digits/oh" if d == "0" and oh else f"digits/{d}"


class _Builder:
    def __init__(self, out: Path, spec: Spec) -> None:
        self.out, self.spec = out, spec
        self.items: list[Utterance] = []
        self._words: dict[tuple[str, bool], tuple[np.ndarray, int]] = {}

    def word(self, stem: str, wideband: bool) -> tuple[np.ndarray, int]:
        key = (stem, wideband)
        if key not in self._words:
            x, rate = load(stem, wideband)
            self._words[key] = (trim(x, rate), rate)
        return self._words[key]

    def emit(self, uid: str, set_: str, truth: str, said: str,
             parts: list[tuple[str, float, float] | float], seed: int) -> None:
        """One utterance through every channel: `parts` are (stem, start, end) pieces of
        recordings (end 0: to the end; the whole word trimmed) and gaps in seconds."""
        for ci, kind in enumerate(self.spec.channels):
            rng = np.random.default_rng([self.spec.seed, seed, ci])
            wide = kind == "g722"
            factor = float(np.random.default_rng([self.spec.seed, seed]).uniform(0.92, 1.08))
            pieces: list[np.ndarray] = []
            rate = 16000 if wide else 8000
            for part in parts:
                if isinstance(part, float):
                    pieces.append(np.zeros(int(part * rate)))
                    continue
                stem, start, end = part
                if start == 0 and end == 0:
                    x, rate = self.word(stem, wide)
                else:
                    x, rate = load(stem, wide)
                    x = trim(x[int(start * rate): int(end * rate) if end else len(x)], rate,
                             margin_s=0.01)
                pieces.append(x)
            x = perturb(np.concatenate(pieces), factor)
            y = channel(x, rate, kind, rng)
            name = f"{uid}.{kind}.wav"
            _write(self.out / name, y, rate)
            self.items.append(Utterance(f"{uid}.{kind}", set_, truth, said, kind, name, rate))


def _build(out: Path, spec: Spec) -> list[Utterance]:
    b = _Builder(out, spec)
    for d in [*"0123456789", "oh"]:
        truth = "0" if d == "oh" else d
        b.emit(f"digit-{d}", "digit", truth, d if d == "oh" else DIGIT_WORDS[d],
               [(f"digits/{d}", 0.0, 0.0)], seed=hash_seed(f"digit{d}"))
    rng = np.random.default_rng(spec.seed)
    for i in range(spec.codes):
        code = "".join(str(rng.integers(0, 10)) for _ in range(4))
        oh = bool(rng.random() < 0.5)
        said = " ".join("oh" if c == "0" and oh else DIGIT_WORDS[c] for c in code)
        for style in ("gaps", "run"):
            parts: list[tuple[str, float, float] | float] = []
            for j, c in enumerate(code):
                if j:
                    parts.append(float(rng.uniform(0.1, 0.4)) if style == "gaps" else 0.0)
                parts.append((_digit_stem(c, oh), 0.0, 0.0))
            b.emit(f"code{i:02d}-{code}-{style}", "digits4", code, said, parts,
                   seed=hash_seed(f"code{i}{style}"))
    for uid, (stem, start, end, truth) in YES_NO.items():
        b.emit(f"yn-{uid}", "yes_no", truth, uid.split("-")[0], [(stem, start, end)],
               seed=hash_seed(uid))
    for phrase, stem in MENU.items():
        b.emit(f"menu-{stem.replace('/', '-')}", "menu", phrase, phrase, [(stem, 0.0, 0.0)],
               seed=hash_seed(stem))
    return b.items


def hash_seed(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def build(cache: Path | None = None, spec: Spec | None = None) -> list[Utterance]:
    """The corpus (building it into the cache when it is not there yet)."""
    spec = spec or Spec()
    out = (cache or default_cache()) / spec.key()
    manifest = out / "manifest.json"
    if manifest.is_file():
        items = [Utterance(**d) for d in json.loads(manifest.read_text())]
        if all((out / u.path).is_file() for u in items):
            return [_absolute(u, out) for u in items]
    out.mkdir(parents=True, exist_ok=True)
    items = _build(out, spec)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(u) for u in items], indent=0))
    tmp.replace(manifest)
    return [_absolute(u, out) for u in items]


def _absolute(u: Utterance, out: Path) -> Utterance:
    return Utterance(u.id, u.set, u.truth, u.said, u.channel, str(out / u.path), u.rate)


@dataclass(frozen=True)
class Trial:
    """An utterance put to a node: the grammar it listens with and what it should get (None:
    the caller said something the grammar does not cover; any value accepted is a false
    accept)."""

    utterance: Utterance
    set: str
    grammar: Grammar
    truth: str | None
    builtin: str | None


DIGITS1 = Grammar(builtin="digits", min_words=1, max_words=1)
DIGITS4 = Grammar(builtin="digits", min_words=4, max_words=4)
YES_NO_GRAMMAR = Grammar(builtin="yes_no")
MENU_GRAMMAR = Grammar(tuple(MENU))
HALF_MENU = Grammar(tuple(MENU)[::2])
"""Every other option: the rest are out-of-grammar utterances for it."""


def trials(items: list[Utterance]) -> list[Trial]:
    """In-grammar trials for every utterance, and out-of-grammar ones (`oog-*`): menu phrases
    at a yes/no question and at a 4-digit prompt, single digits at a 4-digit prompt and at a
    yes/no question, the missing half of the menu at a menu of the other half."""
    out: list[Trial] = []
    for u in items:
        if u.set == "digit":
            out.append(Trial(u, "digit", DIGITS1, u.truth, "digits"))
            out.append(Trial(u, "oog-digits4", DIGITS4, None, "digits"))
            out.append(Trial(u, "oog-yes_no", YES_NO_GRAMMAR, None, "yes_no"))
        elif u.set == "digits4":
            out.append(Trial(u, "digits4", DIGITS4, u.truth, "digits"))
        elif u.set == "yes_no":
            out.append(Trial(u, "yes_no", YES_NO_GRAMMAR, u.truth, "yes_no"))
        elif u.set == "menu":
            out.append(Trial(u, "menu", MENU_GRAMMAR, u.truth, None))
            if u.truth not in HALF_MENU.phrases:
                out.append(Trial(u, "oog-menu", HALF_MENU, None, None))
            out.append(Trial(u, "oog-yes_no", YES_NO_GRAMMAR, None, "yes_no"))
            out.append(Trial(u, "oog-digits4", DIGITS4, None, "digits"))
    return out


@dataclass(frozen=True)
class Outcome:
    trial: Trial
    text: str
    value: str | None
    confidence: float
    features: dict[str, float]
    alternatives: tuple[str, ...]
    decode_s: float

    @property
    def right(self) -> bool:
        return self.value == self.trial.truth

    @property
    def accepted(self) -> bool:
        """Taken by a node at the built-in's default threshold."""
        return self.value is not None and self.confidence >= default_confidence(
            self.trial.builtin)


def value_of(builtin: str | None, text: str) -> str | None:
    """What the node makes of a result text (the flow's own interpretation)."""
    if builtin is not None:
        return parse_builtin(builtin, text)
    return text or None


def run_trial(engine: Engine, trial: Trial, pcm: bytes | None = None) -> Outcome:
    """The utterance through what a call does: the VAD cuts it, the engine decodes it under the
    trial's grammar."""
    if pcm is None:
        pcm = load_pcm(trial.utterance.path)
    started = time.perf_counter()
    _, result = decode(engine, trial.grammar, pcm, RATE, timeout=None)
    took = time.perf_counter() - started
    if result is None:
        return Outcome(trial, "", None, 0.0, {}, (), took)
    return Outcome(trial, result.text, value_of(trial.builtin, result.text), result.confidence,
                   dict(result.features), result.alternatives, took)


def subset(items: list[Utterance], *, sets: tuple[str, ...] = (), channels: tuple[str, ...] = (),
           every: int = 1) -> list[Utterance]:
    """A deterministic slice: these sets and channels, every n-th utterance."""
    picked = [u for u in items if (not sets or u.set in sets)
              and (not channels or u.channel in channels)]
    return picked[::every]


if __name__ == "__main__":
    got = build()
    counts: dict[str, int] = {}
    for u in got:
        counts[u.set] = counts.get(u.set, 0) + 1
    print(json.dumps({"dir": str(Path(got[0].path).parent), "utterances": len(got),
                      "by_set": counts}, indent=1))
