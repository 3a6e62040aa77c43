"""Text as a recogniser says it: numbers spelled out, punctuation dropped, template parts marked.

Prompts are written for TTS ("Press 1", "{{ balance | say_currency }}") and a caller's phrases
for a flow ("option 2"); a pronunciation dictionary knows only words. This is the one place that
turns such text into those words (English letters only: the dictionaries are English), used by
the PocketSphinx engine for a grammar's phrases and by `ivr call` for the prompt catalogue.
"""

from __future__ import annotations

import re

from ivr.lang.numbers import number_words, say_as_kind

SLOT = "\x00"
"""Prefix of the token standing for a template part: SLOT + the kind of words it produces."""
SLOT_KINDS = ("digits", "number", "currency", "date", "any")

_TEMPLATE = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.S)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def template_parts(text: str) -> list[str]:
    """Fixed text and template parts in turn: [text, "{{ ... }}", text, ...]; [text] alone
    when it is no template."""
    return _TEMPLATE.split(text)


def spoken_tokens(text: str) -> list[str]:
    """Lowercase words as a recogniser says them; template parts (`{{ ... }}`) become a `SLOT`
    token of their say-as kind."""
    parts = template_parts(text)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(SLOT + say_as_kind(part))
            continue
        part = _NUMBER.sub(lambda m: f" {number_words(m.group())} ", part.lower())
        part = part.replace("&", " and ").replace("%", " percent ").replace("-", " ")
        part = part.replace("\u2019", "'")
        for word in re.findall(r"[a-z]+(?:'[a-z]+)?", part):
            out.append(word)
    return out


def spoken_words(text: str) -> list[str]:
    """`spoken_tokens` without the template parts."""
    return [w for w in spoken_tokens(text) if not w.startswith(SLOT)]


def spoken_text(text: str) -> str:
    """`spoken_words` as one string: what `expect_prompt` compares over a real call."""
    return " ".join(spoken_words(text))
