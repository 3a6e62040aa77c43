"""Text to speech with a shared cache, so no caller waits for TTS on a fixed prompt.

Static prompts are rendered when a flow loads; dynamic text (balances, dates) is rendered when a
call needs it. Rendering always runs in a subprocess with a timeout: a hung synthesiser costs one
prompt, never a worker's event loop. The cache is a directory of WAV files keyed by
text+voice+rate+sample rate; every worker reads it, writes are atomic renames.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ivr.speech.audio import convert

log = logging.getLogger(__name__)

RENDER_TIMEOUT = 20.0


class TtsError(Exception):
    """Rendering failed (engine missing, crashed or timed out)."""


@dataclass(frozen=True)
class Voice:
    engine: str = "espeak-ng"
    voice: str = "en-us"
    rate: int = 165


def _espeak_voice(language: str, voice: str) -> str:
    """A flow's language picks the voice unless the engine config names one for it."""
    lang = language.lower()
    if lang.startswith("en") or not lang:
        return voice
    return {"zh-cn": "cmn", "zh": "cmn", "ko-kr": "ko"}.get(lang, lang.split("-")[0])


FLITE_RATE = 170
"""Words per minute of flite's voices at their natural duration."""


def _render_cmd(engine: str, text: str, out: Path, voice: str, rate: int) -> list[str]:
    if engine == "flite":  # CMU's diphone/cluster voices (kal, awb, rms, slt)
        stretch = f"duration_stretch={FLITE_RATE / rate:.3f}"
        return ["flite", "-voice", voice, "--setf", stretch, "-t", text, "-o", str(out)]
    # `engine: pyttsx3` renders through espeak-ng directly: pyttsx3 2.99's espeak driver
    # truncates save_to_file output ("one. two" came out as 30 ms), and it is the same voice.
    return ["espeak-ng", "-w", str(out), "-v", voice, "-s", str(rate), "--", text]


class PromptCache:
    """Rendered prompts on disk, shared by every worker of a node."""

    def __init__(self, root: Path, voice: Voice, sample_rate: int = 16000) -> None:
        self.root = root
        self.voice = voice
        self.sample_rate = sample_rate
        root.mkdir(parents=True, exist_ok=True)

    def key(self, text: str, language: str = "en-US") -> str:
        v = self.voice
        raw = f"{v.engine}|{_espeak_voice(language, v.voice)}|{v.rate}|{self.sample_rate}|{text}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def path_for(self, text: str, language: str = "en-US") -> Path:
        return self.root / f"{self.key(text, language)}.wav"

    def cached(self, text: str, language: str = "en-US") -> Path | None:
        p = self.path_for(text, language)
        return p if p.is_file() else None

    def render_sync(self, text: str, language: str = "en-US") -> Path:
        """Render now (flow load, CLI); blocking, so never call it on an event loop."""
        dst = self.path_for(text, language)
        if dst.is_file():
            return dst
        voice = _espeak_voice(language, self.voice.voice)
        with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
            raw = Path(tmp) / "raw.wav"
            cmd = _render_cmd(self.voice.engine, text, raw, voice, self.voice.rate)
            try:
                proc = subprocess.run(cmd, capture_output=True, timeout=RENDER_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                raise TtsError(f"TTS timed out after {RENDER_TIMEOUT}s") from None
            except FileNotFoundError as exc:
                raise TtsError(f"TTS engine not found: {exc.filename}") from None
            if proc.returncode != 0 or not raw.is_file() or raw.stat().st_size < 100:
                raise TtsError(f"TTS failed: {proc.stderr.decode(errors='replace').strip()}")
            convert(raw, dst, self.sample_rate)
        return dst

    async def render(self, text: str, language: str = "en-US") -> Path:
        """Cached path, rendering in a thread (which runs the subprocess) on a miss."""
        hit = self.cached(text, language)
        if hit is not None:
            return hit
        return await asyncio.to_thread(self.render_sync, text, language)

    def prepare_audio(self, src: Path) -> Path:
        """An ops-supplied WAV converted once to the call rate, cached by content."""
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:32]
        dst = self.root / f"file-{digest}-{self.sample_rate}.wav"
        if not dst.is_file():
            convert(src, dst, self.sample_rate)
        return dst
