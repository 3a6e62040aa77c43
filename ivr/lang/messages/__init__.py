"""Message catalogues: what the engine says on its own account, per language.

Flow authors write their prompts in their flow's language; the engine's own sentences (default
noinput/nomatch, "Let's try again.", queue position and wait, the callback offer) come from the
catalogue of the call's current language, one YAML file per language beside this module
(`en-US.yaml`, `zh-CN.yaml`, ...), key -> text, a Jinja template where a value goes in.
A language without a catalogue, or a catalogue without a key, is a problem `ivr validate`
reports for the flow (`problem`), so a call never falls back to English mid-way.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2
import yaml

HERE = Path(__file__).parent

KEYS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "noinput": (),
    "nomatch": (),
    "retry": (),
    "queue_position": ("position",),
    "queue_wait_time": ("minutes",),
    "callback_offer": ("key",),
    "callback_confirm": (),
    "key_star": (),
    "key_pound": (),
})
"""Every key a catalogue must have, with the values its template takes."""

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


class MessageError(LookupError):
    """No catalogue for a language, or a catalogue without a key (a validation problem)."""


@functools.cache
def _load_all() -> MappingProxyType[str, MappingProxyType[str, str]]:
    out: dict[str, MappingProxyType[str, str]] = {}
    for path in sorted(HERE.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise MessageError(f"{path}: a message catalogue is a mapping of key to text")
        out[path.stem] = MappingProxyType({str(k): str(v) for k, v in data.items()})
    return MappingProxyType(out)


def languages() -> list[str]:
    """Languages with a catalogue, as their files name them (en-US, ko-KR, zh-CN)."""
    return list(_load_all())


def resolve(language: str) -> str | None:
    """The catalogue for `language`: the same tag in any case, else the one catalogue of its
    base language (`zh` -> zh-CN); None when there is none."""
    lang = language.strip().lower()
    known = _load_all()
    for tag in known:
        if tag.lower() == lang:
            return tag
    base = [tag for tag in known if tag.split("-")[0].lower() == lang.split("-")[0]]
    return base[0] if len(base) == 1 and "-" not in lang else None


def missing(tag: str) -> list[str]:
    """Keys the catalogue `tag` lacks."""
    have = _load_all().get(tag, MappingProxyType({}))
    return [k for k in KEYS if not have.get(k, "").strip()]


def problem(language: str) -> str | None:
    """Why calls in `language` cannot speak every system prompt, or None when they can."""
    tag = resolve(language)
    if tag is None:
        return (f"no message catalogue for language {language!r} (system prompts exist in: "
                f"{', '.join(languages())}; add ivr/lang/messages/{language}.yaml)")
    lacks = missing(tag)
    if lacks:
        return f"message catalogue {tag}.yaml lacks {', '.join(lacks)}"
    return None


def template(language: str, key: str) -> str:
    """The catalogue's text for key, as written (templates unrendered)."""
    tag = resolve(language)
    if tag is None or key not in KEYS or key in missing(tag):
        raise MessageError(problem(language) or f"unknown message key {key!r}")
    return _load_all()[tag][key]


def fill(source: str, /, **values: Any) -> str:
    """A catalogue template with its values in."""
    return _ENV.from_string(source).render(**values) if "{" in source else source


def text(language: str, key: str, /, **values: Any) -> str:
    """The sentence for key in language, values filled in."""
    return fill(template(language, key), **values)


def spoken_key(language: str, key: str) -> str:
    """A DTMF key as a caller is told to press it (`*` -> "star" / 星号)."""
    names = {"*": "key_star", "#": "key_pound"}
    return text(language, names[key]) if key in names else key
