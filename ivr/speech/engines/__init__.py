"""TTS engines by name: the local synthesisers, `command` and `http` (see each module)."""

from __future__ import annotations

from ivr.speech.engines.base import RENDER_TIMEOUT, Engine, TtsError, Voice
from ivr.speech.engines.command import CommandEngine
from ivr.speech.engines.http import HttpEngine
from ivr.speech.engines.local import LocalEngine

__all__ = ["ENGINES", "RENDER_TIMEOUT", "Engine", "TtsError", "Voice", "engine"]

_LOCAL = LocalEngine()
ENGINES: dict[str, Engine] = {"espeak-ng": _LOCAL, "pyttsx3": _LOCAL, "flite": _LOCAL,
                              "command": CommandEngine(), "http": HttpEngine()}


def engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise TtsError(f"unknown tts engine {name!r} (have: {', '.join(ENGINES)})") from None
