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
from pathlib import Path

from ivr.lang.sayas import speaker, supported
from ivr.lang.spoken import template_parts
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


def pack_texts(text: str) -> list[str]:
    """The texts of a flow's prompt that a pack records: the prompt itself, or a template's
    fixed parts that say something."""
    parts = template_parts(text)
    if len(parts) == 1:
        return [normal(text)] if spoken(text) else []
    return [normal(p) for p in parts[::2] if spoken(p)]


def uses_say_as(text: str) -> bool:
    return any("say_" in p for p in template_parts(text)[1::2])


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

    def missing_fragments(self, language: str) -> list[str]:
        """The say-as fragments of a language this pack has no recording of."""
        if not supported(language):
            return []
        d = self.language_dir(language)
        say = d / SAY_DIR if d is not None else None
        return [f for f in speaker(language).inventory
                if say is None or not (say / f"{f}.wav").is_file()]
