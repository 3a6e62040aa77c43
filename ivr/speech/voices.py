"""The prompt cache as the engine config describes it: voices per language and the recorded
prompt pack, so `ivr serve`, its workers and `ivr call` all render prompts the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ivr.config import EngineConfig, TtsSettings, TtsVoiceSettings
from ivr.speech.engines import Voice
from ivr.speech.packs import PromptPack
from ivr.speech.tts import PromptCache


def voice_of(s: TtsVoiceSettings) -> Voice:
    return Voice(s.engine, s.voice, s.rate, tuple(s.command or ()), s.url, float(s.timeout))


def language_voices(tts: TtsSettings) -> dict[str, Voice]:
    return {lang: voice_of(s) for lang, s in tts.languages.items()}


def pack_of(config: EngineConfig) -> PromptPack | None:
    packs = config.prompts.packs
    return None if packs is None else PromptPack(packs)


def prompt_cache(root: Path, config: EngineConfig, sample_rate: int, **kwargs: Any) -> PromptCache:
    """A PromptCache with the config's voices and pack (`kwargs`: key_file, private_dir)."""
    tts = config.speech.tts
    return PromptCache(root, voice_of(tts), sample_rate, languages=language_voices(tts),
                       pack=pack_of(config), **kwargs)
