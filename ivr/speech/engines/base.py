"""What a TTS engine is: something that turns one text into one WAV file, or says why not.

Engines are plugins keyed by name (`ivr.speech.engines.ENGINES`); `ivr.speech.tts.PromptCache`
picks one per language, caches what it renders and falls back to the next engine when one
fails, so a call never dies on TTS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

RENDER_TIMEOUT = 20.0


class TtsError(Exception):
    """Rendering failed (engine missing, crashed or timed out)."""


@dataclass(frozen=True)
class Voice:
    """One engine's settings: `voice`/`rate` for the local engines, `command` for `command`,
    `url` for `http`; `timeout` bounds one rendering."""

    engine: str = "espeak-ng"
    voice: str = "en-us"
    rate: int = 165
    command: tuple[str, ...] = field(default=())
    url: str | None = None
    timeout: float = RENDER_TIMEOUT


class Engine(ABC):
    """One kind of synthesiser."""

    @abstractmethod
    def identity(self, voice: Voice, language: str) -> str:
        """What, besides the text and the sample rate, decides the audio (the cache key)."""

    @abstractmethod
    def synthesise(self, voice: Voice, text: str, language: str, out: Path, *,
                   private: bool) -> None:
        """Write `text` as WAV (any rate) to `out`, or raise `TtsError`. `private`: the text
        is sensitive, so it must not show in a process listing."""


def check_wav(out: Path, what: str) -> None:
    """An engine's output is a real WAV, not an empty file or an error page."""
    try:
        head = out.read_bytes()[:12] if out.is_file() else b""
    except OSError:
        head = b""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE" or out.stat().st_size < 100:
        raise TtsError(f"{what} gave no WAV audio")
