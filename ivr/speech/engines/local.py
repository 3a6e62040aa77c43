"""The synthesisers installed with the system: espeak-ng (every language) and flite (English)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ivr.speech.engines.base import Engine, TtsError, Voice

FLITE_RATE = 170
"""Words per minute of flite's voices at their natural duration."""


def espeak_voice(language: str, voice: str) -> str:
    """A flow's language picks the voice unless the engine config names one for it."""
    lang = language.lower()
    if lang.startswith("en") or not lang:
        return voice
    return {"zh-cn": "cmn", "zh": "cmn", "ko-kr": "ko"}.get(lang, lang.split("-")[0])


def render_cmd(engine: str, text: str | None, out: Path, voice: str, rate: int) -> list[str]:
    """The synthesiser's command line; with `text` None it reads the text from stdin."""
    if engine == "flite":  # CMU's diphone/cluster voices (kal, awb, rms, slt)
        stretch = f"duration_stretch={FLITE_RATE / rate:.3f}"
        source = ["-f", "/dev/stdin"] if text is None else ["-t", text]
        return ["flite", "-voice", voice, "--setf", stretch, *source, "-o", str(out)]
    # `engine: pyttsx3` renders through espeak-ng directly: pyttsx3 2.99's espeak driver
    # truncates save_to_file output ("one. two" came out as 30 ms), and it is the same voice.
    source = ["--stdin"] if text is None else ["--", text]
    return ["espeak-ng", "-w", str(out), "-v", voice, "-s", str(rate), *source]


class LocalEngine(Engine):
    """espeak-ng / pyttsx3 (the same voice) / flite, run as a subprocess with a timeout."""

    def identity(self, voice: Voice, language: str) -> str:
        return f"{voice.engine}|{espeak_voice(language, voice.voice)}|{voice.rate}"

    def synthesise(self, voice: Voice, text: str, language: str, out: Path, *,
                   private: bool) -> None:
        name = espeak_voice(language, voice.voice)
        cmd = render_cmd(voice.engine, None if private else text, out, name, voice.rate)
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=voice.timeout, check=False,
                                  input=text.encode() if private else None)
        except subprocess.TimeoutExpired:
            raise TtsError(f"TTS timed out after {voice.timeout}s") from None
        except FileNotFoundError as exc:
            raise TtsError(f"TTS engine not found: {exc.filename}") from None
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size < 100:
            raise TtsError(f"TTS failed: {proc.stderr.decode(errors='replace').strip()}")
