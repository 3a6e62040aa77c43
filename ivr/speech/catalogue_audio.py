"""The prompt catalogue as audio for `ivr call`: each prompt as the IVR plays it.

A static prompt is the pack's recording when the prompt pack holds one, else the rendering of
the prompt's language's voice. Template prompts are recognised by a grammar built from English
words (ivr.speech.prompt_grammar), so those in other languages are matched by sound instead,
by their fixed parts: each part that says something ("您的余额是" of
"您的余额是{{ balance | say_currency }}。") becomes a candidate named by the whole template.
Exact when the pack plays that part as its own file; with TTS the part is rendered alone and
found inside the whole sentence's rendering, which espeak-ng keeps close enough to match.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ivr.lang.spoken import template_parts
from ivr.speech.audio import read_wav
from ivr.speech.packs import spoken
from ivr.speech.tts import PromptCache, TtsError

GRAMMAR_LANGUAGES = ("en",)
"""Languages whose template prompts the grammar recogniser can hear."""


def by_grammar(language: str) -> bool:
    return language.lower().split("-")[0] in GRAMMAR_LANGUAGES


def candidates(catalogue: Sequence[tuple[str, str]], cache: PromptCache
               ) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """(static candidates: name and 8 kHz audio, templates for the grammar) of a catalogue of
    (text, language)."""
    static: list[tuple[str, np.ndarray]] = []
    templates: list[str] = []
    for text, language in catalogue:
        split = template_parts(text)
        if len(split) > 1 and by_grammar(language):
            templates.append(text)
            continue
        parts = [text] if len(split) == 1 else [p.strip() for p in split[::2] if spoken(p)]
        for part in parts:
            try:
                static.append((text, read_wav(cache.render_sync(part, language))[0]))
            except (TtsError, OSError, ValueError):
                continue
    return static, templates
