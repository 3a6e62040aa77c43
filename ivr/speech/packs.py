"""Recorded prompt packs: studio (or once-rendered) audio that plays instead of TTS.

A pack is a directory per language (`DIR/zh-CN/`, or `DIR/zh/` for every zh-*):
- `<prompt id>.wav` for a prompt text, where the prompt id is `prompt_id(text)`: `p-` and the
  first 16 hex digits of the SHA-256 of the text as written in the flow (whitespace runs made
  one space, NFC). The id changes when the wording does, so a stale recording never plays for
  new words; `prompts.tsv` in the directory lists id and text for whoever records them.
- `say/<fragment>.wav` for say-as: the values of `{{ x | say_number }}` and friends are said
  by concatenating fragments, as Asterisk's `say` does with its sound packs: one per character
  in Mandarin and Korean (十.wav, 元.wav, 이.wav), one per word in English (twenty.wav); the
  fragments a language needs are `ivr.lang.sayas.speaker(language).inventory`.
A template prompt plays from the pack when each of its fixed parts has a recording and each
template part is a say-as filter whose fragments are all there; anything missing and the whole
prompt is synthesised, so a pack can be filled in file by file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from ivr.lang.sayas import speaker, supported
from ivr.prompt import Prompt

SAY_DIR = "say"
INDEX = "prompts.tsv"
_SPOKEN = re.compile(r"[^\W_]", re.UNICODE)


def normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def prompt_id(text: str) -> str:
    """The stable name of a prompt text in a pack (see the module docstring)."""
    return "p-" + hashlib.sha256(normal(text).encode()).hexdigest()[:16]


def spoken(text: str) -> bool:
    """Whether a fixed part says anything (a lone "。" or ", " plays nothing)."""
    return bool(_SPOKEN.search(text))


class PromptPack:
    """The packs under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def language_dir(self, language: str) -> Path | None:
        for name in (language, language.split("-")[0]):
            d = self.root / name
            if name and d.is_dir():
                return d
        return None

    def recording(self, text: str, language: str) -> Path | None:
        d = self.language_dir(language)
        if d is None:
            return None
        p = d / f"{prompt_id(text)}.wav"
        return p if p.is_file() else None

    def say(self, words: str, language: str) -> list[Path] | None:
        """The fragments that say a say-as value, or None when the pack lacks one."""
        d = self.language_dir(language)
        if d is None or not supported(language):
            return None
        out = []
        for fragment in speaker(language).fragments(words):
            p = d / SAY_DIR / f"{fragment}.wav"
            if not p.is_file():
                return None
            out.append(p)
        return out or None

    def files(self, prompt: Prompt) -> list[Path] | None:
        """What plays a prompt from this pack, or None: synthesise it."""
        if prompt.text is None or prompt.sensitive:
            return None
        if prompt.pieces is None:
            hit = self.recording(prompt.text, prompt.language)
            return None if hit is None else [hit]
        out: list[Path] = []
        for piece in prompt.pieces:
            if piece.say_as:
                got = self.say(piece.text, prompt.language)
                if got is None:
                    return None
                out += got
            elif spoken(piece.text):
                hit = self.recording(piece.text, prompt.language)
                if hit is None:
                    return None
                out.append(hit)
        return out or None

    def lacking(self, texts: Iterable[str], language: str) -> list[str]:
        """Of a flow's prompt texts (fixed parts of templates included), those without a
        recording, and the say-as fragments missing: what `ivr validate` warns about."""
        missing = [t for t in texts if spoken(t) and self.recording(t, language) is None]
        d = self.language_dir(language)
        if supported(language):
            say = d / SAY_DIR if d is not None else None
            missing += [f"say/{f}" for f in speaker(language).inventory
                        if say is None or not (say / f"{f}.wav").is_file()]
        return missing

